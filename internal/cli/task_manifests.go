package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
	"github.com/outposthq/outpost/internal/executor/manifests/bundle"
	"github.com/outposthq/outpost/internal/taskspec"
)

const (
	// maxBundleBytes bounds what --bundle reads from files.
	maxBundleBytes = 64 << 20
	// maxInlineSpecBytes is the largest manifests spec that carries its
	// bundle inline; beyond it the bundle travels as an artifact, well
	// under the hub's spec limit whatever JSON escaping costs.
	maxInlineSpecBytes = 256 << 10
)

// bundleExts are the file types a --bundle directory contributes.
var bundleExts = []string{".yaml", ".yml", ".json"}

// manifestsFlags build a manifests spec from files, so operators need not
// write its JSON by hand.
type manifestsFlags struct {
	release   string
	namespace string
	bundle    []string
	revision  int64
	adopt     bool
	noPrune   bool
}

func (m *manifestsFlags) bind(fl *pflag.FlagSet) {
	fl.StringVar(&m.release, "release", "", "manifests: release the bundle is a revision of")
	fl.StringSliceVar(&m.bundle, "bundle", nil, "manifests: files or directories (their *.yaml, *.yml and *.json, sorted) forming the bundle (repeatable, comma-separated)")
	fl.StringVar(&m.namespace, "namespace", "", "manifests: namespace for namespaced objects that name none")
	fl.Int64Var(&m.revision, "revision", 0, "manifests: revision number (default: the agent picks the next one)")
	fl.BoolVar(&m.adopt, "adopt", false, "manifests: take over existing objects Outpost does not own instead of skipping them")
	fl.BoolVar(&m.noPrune, "no-prune", false, "manifests: keep objects the previous revision had and this one lacks")
}

// used reports whether any manifests flag was given.
func (m *manifestsFlags) used() bool {
	return m.release != "" || len(m.bundle) > 0 || m.namespace != "" || m.revision != 0 || m.adopt || m.noPrune
}

// manifestsTask is a manifests spec whose bundle has been read and checked,
// not yet encoded.
type manifestsTask struct {
	spec  taskspec.Manifests
	data  []byte
	files int
	objs  int
}

// prepareManifests checks the manifests flags of `task run` and reads the
// bundle. Everything that can fail locally fails here, before the hub is
// contacted or anything uploaded.
func prepareManifests(f *taskRunFlags) (*manifestsTask, error) {
	m := &f.manifests
	switch {
	case f.kind == "":
		f.kind = taskspec.KindManifests
	case f.kind != taskspec.KindManifests:
		return nil, fmt.Errorf("--release, --bundle, --namespace, --revision, --adopt and --no-prune build a manifests spec; they do not go with --kind %s", f.kind)
	}
	if f.specFile != "" || f.specJSON != "" {
		return nil, errors.New("pass the manifests spec either with --release and --bundle or with --spec/--spec-json, not both")
	}
	if m.release == "" || len(m.bundle) == 0 {
		return nil, errors.New("a manifests task needs --release NAME and --bundle FILE|DIR")
	}
	data, files, objs, err := readBundle(m.bundle)
	if err != nil {
		return nil, err
	}
	s := taskspec.Manifests{Release: m.release, Namespace: m.namespace, Revision: m.revision, Adopt: m.adopt}
	if m.noPrune {
		prune := false
		s.Prune = &prune
	}
	return newManifestsTask(s, data, files, objs)
}

// newManifestsTask checks spec s with the bundle data (read from files
// files and holding objs objects) inline, as `task run` and
// `release apply` both send it.
func newManifestsTask(s taskspec.Manifests, data []byte, files, objs int) (*manifestsTask, error) {
	s.Bundle, s.Artifact = string(data), ""
	t := &manifestsTask{spec: s, data: data, files: files, objs: objs}
	if err := t.spec.Validate(); err != nil {
		return nil, fmt.Errorf("manifests spec: %w", err)
	}
	return t, nil
}

// conflictKey is the key every task of the release shares, so two
// revisions of one release never apply at once.
func (t *manifestsTask) conflictKey() string { return "manifests/" + t.spec.Release }

// encoded returns the spec as sent, computed here without contacting the
// hub: the bundle inline, or, when the spec would be too large, named by
// the digest artifact under which the bundle must be uploaded. The same
// task always encodes to the same bytes.
func (t *manifestsTask) encoded() (spec []byte, artifact string, err error) {
	spec, err = json.Marshal(t.spec)
	if err != nil {
		return nil, "", fmt.Errorf("manifests spec: %w", err)
	}
	if len(spec) <= maxInlineSpecBytes {
		return spec, "", nil
	}
	sum := sha256.Sum256(t.data)
	s := t.spec
	s.Bundle, s.Artifact = "", taskspec.ArtifactDigestPrefix+hex.EncodeToString(sum[:])
	spec, err = json.Marshal(s)
	if err != nil {
		return nil, "", fmt.Errorf("manifests spec: %w", err)
	}
	return spec, s.Artifact, nil
}

// encodeManifests returns the spec, and the artifact digest when the bundle was too
// large to travel inline and has been uploaded.
func (a *app) encodeManifests(ctx context.Context, client outpostv1connect.OperatorServiceClient, t *manifestsTask) ([]byte, string, error) {
	spec, artifact, err := t.encoded()
	if err != nil || artifact == "" {
		return spec, "", err
	}
	digest, err := uploadContent(ctx, client, "the bundle", bytes.NewReader(t.data))
	if err != nil {
		return nil, "", err
	}
	if digest != artifact {
		return nil, "", fmt.Errorf("upload the bundle: stored as %s, the spec names %s", digest, artifact)
	}
	a.notef("Uploaded the bundle (%d bytes, larger than the %d KiB a spec carries inline) as %s.", len(t.data), maxInlineSpecBytes>>10, digest)
	return spec, digest, nil
}

// readBundle reads the files and directories named by --bundle into one
// multi-document YAML bundle, at most maxBundleBytes, in the order given
// (a directory's files sorted by name). Each file is decoded on its own
// first, so a malformed object is reported with its file. It returns the
// bundle, the number of files and the number of objects.
func readBundle(paths []string) ([]byte, int, int, error) {
	files, err := bundleFiles(paths)
	if err != nil {
		return nil, 0, 0, err
	}
	var (
		out   bytes.Buffer
		total int64
		objs  int
	)
	for _, path := range files {
		b, err := readBounded(path, maxBundleBytes-total)
		if err != nil {
			return nil, 0, 0, err
		}
		total += int64(len(b))
		decoded, err := bundle.Decode(b, bundle.Limits{MaxBytes: maxBundleBytes, MaxObjects: math.MaxInt32})
		if err != nil {
			return nil, 0, 0, fmt.Errorf("bundle file %s: %w", path, err)
		}
		objs += len(decoded)
		docs := [][]byte{b}
		if strings.EqualFold(filepath.Ext(path), ".json") {
			// A JSON file may hold a stream of values, which only stays
			// one bundle with the others as one YAML document each.
			if docs, err = jsonValues(b); err != nil {
				return nil, 0, 0, fmt.Errorf("bundle file %s: %w", path, err)
			}
		}
		for _, doc := range docs {
			// The joining separator replaces a file's own leading one.
			doc = bytes.TrimPrefix(bytes.TrimPrefix(doc, []byte("---\n")), []byte("---\r\n"))
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			if out.Len() > 0 {
				out.WriteString("---\n")
			}
			out.Write(doc)
			if !bytes.HasSuffix(doc, []byte("\n")) {
				out.WriteByte('\n')
			}
		}
	}
	if objs == 0 {
		return nil, 0, 0, fmt.Errorf("--bundle %s holds no objects; a manifests task with an empty bundle would prune everything the release has", strings.Join(paths, ","))
	}
	return out.Bytes(), len(files), objs, nil
}

// bundleFiles expands directories into their bundle files, sorted by name;
// subdirectories are not descended into.
func bundleFiles(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("--bundle: %w", err)
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("--bundle: %w", err)
		}
		n := len(files)
		for _, e := range entries { // ReadDir sorts by name
			path := filepath.Join(p, e.Name())
			if !slices.Contains(bundleExts, strings.ToLower(filepath.Ext(e.Name()))) {
				continue
			}
			// Follow symlinks: a mounted ConfigMap's files are symlinks.
			if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
				continue
			}
			files = append(files, path)
		}
		if len(files) == n {
			return nil, fmt.Errorf("--bundle: directory %s holds no *.yaml, *.yml or *.json files", p)
		}
	}
	return files, nil
}

// readBounded reads path, failing when it holds more than limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path) //nolint:gosec // the operator names the bundle files
	if err != nil {
		return nil, fmt.Errorf("--bundle: %w", err)
	}
	defer closeQuietly(f)
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("--bundle: read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("--bundle: the bundle is larger than %d MiB at %s; split the release into several", maxBundleBytes>>20, path)
	}
	return b, nil
}

// jsonValues splits a stream of JSON values into the values, verbatim.
func jsonValues(b []byte) ([][]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var out [][]byte
	for {
		var v json.RawMessage
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("malformed JSON: %w", err)
		}
		out = append(out, v)
	}
}

// addManifests completes req with the manifests spec: inline or as an
// uploaded artifact, plus the release's conflict key.
func (a *app) addManifests(ctx context.Context, client outpostv1connect.OperatorServiceClient, t *manifestsTask, req *v1.EnqueueTaskRequest) error {
	spec, digest, err := a.encodeManifests(ctx, client, t)
	if err != nil {
		return err
	}
	req.Spec = spec
	if digest != "" {
		req.Artifacts = append(req.Artifacts, digest)
	}
	if !slices.Contains(req.ConflictKeys, t.conflictKey()) {
		req.ConflictKeys = append(req.ConflictKeys, t.conflictKey())
	}
	a.notef("Bundle of release %s: %d objects from %d files.", t.spec.Release, t.objs, t.files)
	return nil
}
