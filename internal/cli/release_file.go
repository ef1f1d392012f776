package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/archive"
	"github.com/outposthq/outpost/internal/executor/manifests/bundle"
	"github.com/outposthq/outpost/internal/taskspec"
)

// What a release file is and how much of it is read.
const (
	// maxReleaseFileBytes bounds a release file; charts, bundles and
	// values it names are bounded on their own.
	maxReleaseFileBytes = 4 << 20
	releaseAPIVersion   = "outpost.dev/v1"
	releaseFileKind     = "Release"
	// maxReleaseDescription caps spec.description.
	maxReleaseDescription = 1024
)

// ErrInvalidReleaseFile is wrapped by every error about a release file
// that does not parse or does not describe a valid release.
var ErrInvalidReleaseFile = errors.New("invalid release file")

// releaseDoc is one document of a release file. Fields are decoded
// strictly: an unknown one is an error, not ignored.
type releaseDoc struct {
	APIVersion string          `yaml:"apiVersion"`
	Kind       string          `yaml:"kind"`
	Metadata   releaseMetadata `yaml:"metadata"`
	Spec       releaseSpec     `yaml:"spec"`
}

type releaseMetadata struct {
	Name        string `yaml:"name"`
	Environment string `yaml:"environment"`
}

type releaseSpec struct {
	Mode        string            `yaml:"mode"`
	Ignore      []releaseIgnore   `yaml:"ignore"`
	Description string            `yaml:"description"`
	Manifests   *releaseManifests `yaml:"manifests"`
	Helm        *releaseHelm      `yaml:"helm"`
	Terraform   *releaseTerraform `yaml:"terraform"`
}

type releaseIgnore struct {
	Group string   `yaml:"group"`
	Kind  string   `yaml:"kind"`
	Paths []string `yaml:"paths"`
}

type releaseManifests struct {
	Namespace string   `yaml:"namespace"`
	Files     []string `yaml:"files"`
	Bundle    string   `yaml:"bundle"`
	Adopt     bool     `yaml:"adopt"`
	Prune     *bool    `yaml:"prune"`
}

type releaseHelm struct {
	Chart           string   `yaml:"chart"`
	Repo            string   `yaml:"repo"`
	ChartName       string   `yaml:"chartName"`
	Version         string   `yaml:"version"`
	Username        string   `yaml:"username"`
	Password        string   `yaml:"password"`
	RepoCAFile      string   `yaml:"repoCAFile"`
	PlainHTTP       bool     `yaml:"plainHTTP"`
	Values          []string `yaml:"values"`
	Set             []string `yaml:"set"`
	Namespace       string   `yaml:"namespace"`
	CreateNamespace bool     `yaml:"createNamespace"`
	ReleaseName     string   `yaml:"releaseName"`
	Wait            bool     `yaml:"wait"`
	Atomic          bool     `yaml:"atomic"`
	Timeout         string   `yaml:"timeout"`
	HistoryMax      int      `yaml:"historyMax"`
	SkipCRDs        bool     `yaml:"skipCRDs"`
	DisableHooks    bool     `yaml:"disableHooks"`
	Adopt           bool     `yaml:"adopt"`
}

// helmFileFields names the release file's helm fields by the task run
// flag of the same meaning, for errors from the shared chart builders.
var helmFileFields = map[string]string{
	flagChart:      "chart",
	flagRepo:       "repo",
	flagChartName:  "chartName",
	flagVersion:    "version",
	flagUsername:   "username",
	flagPassword:   "password",
	flagRepoCAFile: "repoCAFile",
	flagPlainHTTP:  "plainHTTP",
	flagValues:     "values",
	flagSet:        "set",
}

// helmFileField is chartOptions.name for release files: "spec.helm.repo".
func helmFileField(flag string) string {
	if f, ok := helmFileFields[flag]; ok {
		return "spec.helm." + f
	}
	return "spec.helm." + flag
}

// sectionOf names the part of a release file a decoded Go type is, for
// "unknown field" errors.
var sectionOf = map[string]string{
	"cli.releaseDoc":       "the top level (apiVersion, kind, metadata, spec)",
	"cli.releaseMetadata":  "metadata",
	"cli.releaseSpec":      "spec",
	"cli.releaseIgnore":    "spec.ignore",
	"cli.releaseManifests": "spec.manifests",
	"cli.releaseHelm":      "spec.helm",
	"cli.releaseTerraform": "spec.terraform",
}

// preparedRelease is one release of a release file, read, built and
// checked; nothing has been uploaded or sent.
type preparedRelease struct {
	// source says where it came from: "release.yaml" or
	// "release.yaml (document 2)".
	source      string
	env, name   string
	kind        string
	description string
	mode        v1.ReleaseMode
	ignore      []*v1.IgnoreRule
	manifests   *manifestsTask
	helm        *helmTask
	terraform   *terraformTask
}

// summary says what was built, for a note: "Release web (prod): 3
// objects from 2 files." or "Release shop (prod): chart shop-0.1.0 packed
// from ./charts/shop (8 files), 2105 bytes."
func (r *preparedRelease) summary() string {
	head := fmt.Sprintf("Release %s (%s): ", r.name, r.env)
	switch {
	case r.manifests != nil:
		if r.manifests.files == 0 {
			return head + plural(int64(r.manifests.objs), "object") + " inline."
		}
		return head + fmt.Sprintf("%s from %s.", plural(int64(r.manifests.objs), "object"), plural(int64(r.manifests.files), "file"))
	case r.helm != nil && r.helm.chart != nil:
		c := r.helm.chart
		from := "read from " + c.from
		if c.files > 0 {
			from = fmt.Sprintf("packed from %s (%s)", c.from, plural(int64(c.files), "file"))
		}
		return head + fmt.Sprintf("chart %s-%s %s, %s.", c.name, c.version, from, plural(int64(len(c.archive)), "byte"))
	case r.helm != nil && r.helm.spec.Chart.Name == "":
		return head + "chart " + r.helm.spec.Chart.Repository + "."
	case r.helm != nil:
		return head + "chart " + r.helm.spec.Chart.Name + " from " + r.helm.spec.Chart.Repository + "."
	case r.terraform != nil:
		return head + r.terraform.summary()
	}
	return head + r.kind + "."
}

// pendingUpload is content an ApplyRelease request names by digest and
// that must be uploaded first.
type pendingUpload struct {
	what   string
	data   []byte
	digest string
}

// request returns the ApplyRelease request for r, and the content to
// upload before sending it. It contacts nothing, and the same release
// gives the same request byte for byte, so applying an unchanged file
// makes no new revision.
func (r *preparedRelease) request() (*v1.ApplyReleaseRequest, []pendingUpload, error) {
	req := &v1.ApplyReleaseRequest{
		Environment: r.env, Name: r.name, Kind: r.kind, Mode: r.mode, Ignore: r.ignore, Description: r.description,
	}
	var uploads []pendingUpload
	switch {
	case r.manifests != nil:
		spec, artifact, err := r.manifests.encoded()
		if err != nil {
			return nil, nil, err
		}
		req.Spec = spec
		if artifact != "" {
			req.Artifacts = []string{artifact}
			uploads = append(uploads, pendingUpload{what: "the bundle", data: r.manifests.data, digest: artifact})
		}
	case r.helm != nil:
		req.Spec = r.helm.encoded
		if c := r.helm.chart; c != nil && r.helm.upload {
			req.Artifacts = []string{c.digest}
			uploads = append(uploads, pendingUpload{what: "the chart archive", data: c.archive, digest: c.digest})
		}
	case r.terraform != nil:
		req.Spec = r.terraform.encoded
		if d := r.terraform.spec.Artifact; d != "" {
			req.Artifacts = []string{d}
		}
		if m := r.terraform.module; m != nil {
			uploads = append(uploads, pendingUpload{what: "the module archive", data: m.archive, digest: m.digest})
		}
	}
	return req, uploads, nil
}

// readReleaseFile reads path ("-" for stdin) and prepares every release
// it holds, in file order. envFlag is --env: it fills in a release that
// names no environment, and must agree with one that does.
func (a *app) readReleaseFile(path, envFlag string) ([]*preparedRelease, error) {
	name, dir := path, filepath.Dir(path)
	var r io.Reader
	if path == "-" {
		// Paths in a release read from stdin are relative to the
		// working directory.
		name, dir, r = "stdin", ".", a.opts.Stdin
	} else {
		f, err := os.Open(path) //nolint:gosec // the operator names the release file
		if err != nil {
			return nil, fmt.Errorf("release file: %w", err)
		}
		defer closeQuietly(f)
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxReleaseFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("release file %s: %w", name, err)
	}
	if len(data) > maxReleaseFileBytes {
		return nil, fmt.Errorf("%w %s: larger than %d MiB; keep manifests in the files spec.manifests.files names", ErrInvalidReleaseFile, name, maxReleaseFileBytes>>20)
	}
	docs, err := parseReleaseFile(name, data)
	if err != nil {
		return nil, err
	}
	out := make([]*preparedRelease, 0, len(docs))
	seen := map[string]string{}
	for i, d := range docs {
		source := name
		if len(docs) > 1 {
			source = fmt.Sprintf("%s (document %d)", name, i+1)
		}
		p, err := a.prepareRelease(d, source, dir, envFlag)
		if err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrInvalidReleaseFile, source, err)
		}
		key := p.env + "/" + p.name
		if prev, ok := seen[key]; ok {
			return nil, fmt.Errorf("%w %s: release %s in %s is also defined in %s; define each release once", ErrInvalidReleaseFile, name, p.name, p.env, prev)
		}
		seen[key] = source
		out = append(out, p)
	}
	return out, nil
}

// parseReleaseFile decodes every document of a release file strictly.
// Errors name the file and, where the parser knows it, the line.
func parseReleaseFile(name string, data []byte) ([]releaseDoc, error) {
	// Parsing into nodes expands no alias, so syntax errors are reported
	// with their line before the check for alias bombs, which must come
	// before decoding into values.
	nodes := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := nodes.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w %s", ErrInvalidReleaseFile, describeYAMLError(name, err))
		}
	}
	if err := archive.CheckYAML(name, data, archive.YAMLLimits{}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidReleaseFile, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var docs []releaseDoc
	for {
		var d releaseDoc
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w %s", ErrInvalidReleaseFile, describeYAMLError(name, err))
		}
		if d.isZero() {
			continue // an empty document, e.g. a trailing "---"
		}
		docs = append(docs, d)
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("%w %s: holds no release; see `outpost release apply --help` for the format", ErrInvalidReleaseFile, name)
	}
	return docs, nil
}

func (d *releaseDoc) isZero() bool {
	return d.APIVersion == "" && d.Kind == "" && d.Metadata == (releaseMetadata{}) &&
		d.Spec.Mode == "" && len(d.Spec.Ignore) == 0 && d.Spec.Description == "" && d.Spec.Manifests == nil && d.Spec.Helm == nil && d.Spec.Terraform == nil
}

var (
	// yamlUnknownField is how the YAML decoder reports an unknown field.
	yamlUnknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type (\S+)$`)
	// yamlLine is a decoder error with a line: "line 3: ...".
	yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
)

// describeYAMLError rewrites a YAML decoder error as "FILE:LINE: what",
// one problem per line, with unknown fields named with their section.
func describeYAMLError(name string, err error) string {
	var msgs []string
	if te, ok := errors.AsType[*yaml.TypeError](err); ok {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	out := make([]string, len(msgs))
	for i, m := range msgs {
		if g := yamlUnknownField.FindStringSubmatch(m); g != nil {
			section := sectionOf[g[3]]
			if section == "" {
				section = "this section"
			}
			out[i] = fmt.Sprintf("%s:%s: unknown field %q in %s; check its spelling and indentation", name, g[1], g[2], section)
			continue
		}
		if g := yamlLine.FindStringSubmatch(m); g != nil {
			out[i] = fmt.Sprintf("%s:%s: %s", name, g[1], g[2])
			continue
		}
		out[i] = name + ": " + strings.TrimPrefix(m, "yaml: ")
	}
	return strings.Join(out, "\n")
}

// prepareRelease checks one document and builds its task spec with the
// builders of `task run`, relative paths taken from dir.
func (a *app) prepareRelease(d releaseDoc, source, dir, envFlag string) (*preparedRelease, error) {
	if d.APIVersion != releaseAPIVersion || d.Kind != releaseFileKind {
		return nil, fmt.Errorf("apiVersion %q, kind %q: want apiVersion %s and kind %s", d.APIVersion, d.Kind, releaseAPIVersion, releaseFileKind)
	}
	name := d.Metadata.Name
	if err := checkReleaseName(name); err != nil {
		return nil, fmt.Errorf("metadata.name: %w", err)
	}
	p := &preparedRelease{source: source, name: name, description: d.Spec.Description}
	switch env := d.Metadata.Environment; {
	case env != "" && envFlag != "" && env != envFlag:
		return nil, fmt.Errorf("release %s names environment %s, --env says %s; drop one of them", name, env, envFlag)
	case env != "":
		p.env = env
	case envFlag != "":
		p.env = envFlag
	default:
		return nil, fmt.Errorf("release %s names no environment: set metadata.environment or pass --env", name)
	}
	mode, err := parseReleaseMode(d.Spec.Mode, d.Spec.Terraform != nil)
	if err != nil {
		return nil, fmt.Errorf("spec.mode: %w", err)
	}
	p.mode = mode
	if len(d.Spec.Description) > maxReleaseDescription {
		return nil, fmt.Errorf("spec.description: longer than %d bytes", maxReleaseDescription)
	}
	for i, rule := range d.Spec.Ignore {
		r, err := checkIgnoreRule(rule)
		if err != nil {
			return nil, fmt.Errorf("spec.ignore[%d]: %w", i, err)
		}
		p.ignore = append(p.ignore, r)
	}
	switch m, h, tf := d.Spec.Manifests, d.Spec.Helm, d.Spec.Terraform; {
	case (m != nil) && (h != nil) || (m != nil || h != nil) && tf != nil:
		return nil, errors.New("spec has more than one of manifests, helm and terraform: a release is one of them; split it into several releases")
	case tf != nil:
		p.kind = taskspec.KindTerraform
		p.terraform, err = prepareReleaseTerraform(name, tf, dir)
	case m != nil:
		p.kind = taskspec.KindManifests
		p.manifests, err = prepareReleaseManifests(name, m, dir)
	case h != nil:
		p.kind = taskspec.KindHelm
		p.helm, err = prepareReleaseHelm(name, h, dir)
	default:
		return nil, errors.New("spec needs manifests (namespace, files or bundle), helm (chart, namespace, values) or terraform (module, variables)")
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// checkReleaseName refuses what cannot name a release.
func checkReleaseName(name string) error {
	switch {
	case name == "":
		return errors.New("is required")
	case len(name) > taskspec.MaxReleaseLength || !taskspec.IsDNSLabel(name):
		return fmt.Errorf("%q: want a DNS-1123 label (lower-case letters, digits and '-', starting and ending with a letter or digit) of at most %d characters", name, taskspec.MaxReleaseLength)
	}
	return nil
}

// parseReleaseMode reads "correct" or "detect"; the default is correct,
// detect for terraform (correcting drift would apply changes nobody
// reviewed).
func parseReleaseMode(s string, terraform bool) (v1.ReleaseMode, error) {
	if s == "" && terraform {
		return v1.ReleaseMode_RELEASE_MODE_DETECT, nil
	}
	switch strings.ToLower(s) {
	case "", "correct":
		return v1.ReleaseMode_RELEASE_MODE_CORRECT, nil
	case "detect":
		return v1.ReleaseMode_RELEASE_MODE_DETECT, nil
	}
	return 0, fmt.Errorf("%q: want correct (re-apply drifted objects) or detect (report drift only)", s)
}

// modeName renders a mode as the release file spells it.
func modeName(m v1.ReleaseMode) string {
	switch m {
	case v1.ReleaseMode_RELEASE_MODE_CORRECT, v1.ReleaseMode_RELEASE_MODE_UNSPECIFIED:
		return "correct"
	case v1.ReleaseMode_RELEASE_MODE_DETECT:
		return "detect"
	}
	return strings.ToLower(strings.TrimPrefix(m.String(), "RELEASE_MODE_"))
}

// checkIgnoreRule checks an ignore rule's JSON pointers.
func checkIgnoreRule(r releaseIgnore) (*v1.IgnoreRule, error) {
	if len(r.Paths) == 0 {
		return nil, errors.New("paths: give at least one JSON pointer, such as /spec/replicas")
	}
	for _, p := range r.Paths {
		if err := checkJSONPointer(p); err != nil {
			return nil, fmt.Errorf("paths: %w", err)
		}
	}
	return &v1.IgnoreRule{Group: r.Group, Kind: r.Kind, Paths: r.Paths}, nil
}

// checkJSONPointer checks a JSON pointer (RFC 6901) naming a field, as
// the hub does: "/" before each token, no empty token, "~" only as "~0"
// or "~1", no control characters. The whole object ("" or "/") is
// refused: ignoring everything is removing the object from the release.
func checkJSONPointer(p string) error {
	if !strings.HasPrefix(p, "/") || p == "/" {
		return fmt.Errorf("%q is not a JSON pointer to a field: it must start with /, as in /spec/replicas", p)
	}
	for _, token := range strings.Split(p[1:], "/") {
		if token == "" {
			return fmt.Errorf("%q has an empty token (//, or a trailing /)", p)
		}
		for i := 0; i < len(token); i++ {
			switch {
			case token[i] == '~' && (i+1 == len(token) || (token[i+1] != '0' && token[i+1] != '1')):
				return fmt.Errorf("%q is not a JSON pointer: ~ must be written ~0, and / inside a name ~1", p)
			case token[i] < 0x20:
				return fmt.Errorf("%q holds a control character", p)
			}
		}
	}
	return nil
}

// relativeTo resolves a path of the release file against its directory.
func relativeTo(dir, p string) string {
	if p == "" || filepath.IsAbs(p) || strings.Contains(p, "://") {
		return p
	}
	return filepath.Join(dir, p)
}

// prepareReleaseManifests builds the manifests spec as `task run --bundle` does.
func prepareReleaseManifests(name string, m *releaseManifests, dir string) (*manifestsTask, error) {
	var (
		data        []byte
		files, objs int
		err         error
	)
	switch {
	case len(m.Files) > 0 && m.Bundle != "":
		return nil, errors.New("spec.manifests: give files or bundle, not both")
	case len(m.Files) > 0:
		paths := make([]string, len(m.Files))
		for i, f := range m.Files {
			paths[i] = relativeTo(dir, f)
		}
		data, files, objs, err = readBundle(paths)
		if err != nil {
			return nil, fmt.Errorf("spec.manifests.files: %w", err)
		}
	case m.Bundle != "":
		data = []byte(m.Bundle)
		decoded, err := bundle.Decode(data, bundle.Limits{MaxBytes: maxBundleBytes})
		if err != nil {
			return nil, fmt.Errorf("spec.manifests.bundle: %w", err)
		}
		if len(decoded) == 0 {
			return nil, errors.New("spec.manifests.bundle holds no objects; a release with an empty bundle would prune everything it has")
		}
		objs = len(decoded)
	default:
		return nil, errors.New("spec.manifests needs files (paths relative to the release file) or bundle (inline YAML)")
	}
	s := taskspec.Manifests{Release: name, Namespace: m.Namespace, Adopt: m.Adopt, Prune: m.Prune}
	t, err := newManifestsTask(s, data, files, objs)
	if err != nil {
		return nil, fmt.Errorf("spec.manifests: %w", err)
	}
	return t, nil
}

// prepareReleaseHelm builds the helm spec as `task run --chart` does: an
// install (helm upgrade --install) of the chart with its values.
func prepareReleaseHelm(name string, h *releaseHelm, dir string) (*helmTask, error) {
	if h.Namespace == "" {
		return nil, errors.New("spec.helm.namespace: is required (the Helm release's namespace)")
	}
	release := h.ReleaseName
	if release == "" {
		release = name
	}
	t := &helmTask{spec: taskspec.Helm{
		Action: taskspec.HelmInstall, Release: release, Namespace: h.Namespace, CreateNamespace: h.CreateNamespace,
		Wait: h.Wait, Atomic: h.Atomic, HistoryMax: h.HistoryMax, Adopt: h.Adopt,
		DisableHooks: h.DisableHooks, SkipCRDs: h.SkipCRDs,
	}}
	if h.Timeout != "" {
		d, err := time.ParseDuration(h.Timeout)
		if err != nil {
			return nil, fmt.Errorf("spec.helm.timeout %q: want a duration such as 5m or 90s", h.Timeout)
		}
		if t.spec.TimeoutSeconds, err = helmTimeoutSeconds(d); err != nil {
			return nil, fmt.Errorf("spec.helm.timeout: %s", strings.TrimPrefix(err.Error(), "--helm-timeout "))
		}
	}
	src := chartOptions{
		chart: h.Chart, repo: h.Repo, chartName: h.ChartName, version: h.Version,
		username: h.Username, password: h.Password, repoCAFile: relativeTo(dir, h.RepoCAFile), plainHTTP: h.PlainHTTP,
		name: helmFileField,
	}
	// In a release file, chart names the chart of a repo too.
	if h.Repo != "" && h.ChartName == "" {
		src.chart, src.chartName = "", h.Chart
	}
	if src.chart != "" && !strings.HasPrefix(src.chart, "oci://") {
		src.chart = relativeTo(dir, src.chart)
	}
	src.given = func(flag string) bool {
		switch flag {
		case flagVersion:
			return h.Version != ""
		case flagUsername:
			return h.Username != ""
		case flagPassword:
			return h.Password != ""
		case flagRepoCAFile:
			return h.RepoCAFile != ""
		case flagPlainHTTP:
			return h.PlainHTTP
		}
		return false
	}
	chart, packed, err := src.source()
	if err != nil {
		return nil, err
	}
	t.spec.Chart, t.chart = chart, packed
	values := make([]string, len(h.Values))
	for i, v := range h.Values {
		values[i] = relativeTo(dir, v)
	}
	if t.spec.Values, err = mergeValues(values, h.Set, nil, helmFileField); err != nil {
		return nil, err
	}
	if err := t.encode(); err != nil {
		return nil, err
	}
	return t, nil
}
