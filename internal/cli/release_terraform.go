package cli

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/archive"
	"github.com/outposthq/outpost/internal/taskspec"
)

// Bounds of a packed module directory: the agent's archive defaults, so a
// module refused here would be refused there too.
var moduleCaps = packCaps{files: maxModuleFiles, fileBytes: maxModuleFileBytes, totalBytes: maxModuleTotalBytes}

const (
	maxModuleFileBytes  = archive.DefaultMaxFileBytes
	maxModuleTotalBytes = archive.DefaultMaxTotalBytes
	maxModuleFiles      = archive.DefaultMaxFiles
	maxModuleArchive    = archive.DefaultMaxCompressedBytes
)

// releaseTerraform is spec.terraform of a release file: a module applied
// to the workspace named after the release.
type releaseTerraform struct {
	// Module is a local module directory, packed here; URL and Artifact
	// are the other sources.
	Module             string            `yaml:"module"`
	URL                string            `yaml:"url"`
	Artifact           string            `yaml:"artifact"`
	Path               string            `yaml:"path"`
	Username           string            `yaml:"username"`
	Password           string            `yaml:"password"`
	PlainHTTP          bool              `yaml:"plainHTTP"`
	Workspace          string            `yaml:"workspace"`
	Variables          map[string]any    `yaml:"variables"`
	SensitiveVariables map[string]string `yaml:"sensitiveVariables"`
	Approval           string            `yaml:"approval"`
	Timeout            string            `yaml:"timeout"`
	Parallelism        int               `yaml:"parallelism"`
}

// terraformTask is a terraform release's spec, encoded, and the module
// archive packed from a directory (nil for the other sources).
type terraformTask struct {
	spec    taskspec.Terraform
	encoded []byte
	module  *packedModule
}

// packedModule is a module directory packed into a reproducible tar.gz.
type packedModule struct {
	archive []byte
	digest  string
	from    string
	files   int
	// skipped names what was left out (local state, caches, variable
	// files), top-level paths first.
	skipped []string
}

// prepareReleaseTerraform builds the terraform spec of release name:
// apply, on the workspace named after the release.
func prepareReleaseTerraform(name string, tf *releaseTerraform, dir string) (*terraformTask, error) {
	if tf.Workspace != "" && tf.Workspace != name {
		return nil, fmt.Errorf("spec.terraform.workspace %q: a release has one workspace, named after it; leave it out or set it to %q", tf.Workspace, name)
	}
	sources := 0
	for _, set := range []bool{tf.Module != "", tf.URL != "", tf.Artifact != ""} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return nil, errors.New("spec.terraform: give exactly one of module (a local directory, packed here), url (https:// or oci://) and artifact (sha256:…)")
	}
	t := &terraformTask{spec: taskspec.Terraform{
		Workspace: name, URL: tf.URL, Artifact: tf.Artifact, Path: tf.Path,
		Username: tf.Username, Password: tf.Password, PlainHTTP: tf.PlainHTTP,
		SensitiveVariables: tf.SensitiveVariables, Approval: tf.Approval, Parallelism: tf.Parallelism,
	}}
	if len(tf.SensitiveVariables) == 0 {
		t.spec.SensitiveVariables = nil
	}
	if len(tf.Variables) > 0 {
		t.spec.Variables = make(map[string]json.RawMessage, len(tf.Variables))
		for k, v := range tf.Variables {
			b, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("spec.terraform.variables.%s: not expressible as JSON (maps need string keys): %w", k, err)
			}
			t.spec.Variables[k] = b
		}
	}
	if tf.Timeout != "" {
		d, err := time.ParseDuration(tf.Timeout)
		if err != nil || d < time.Second {
			return nil, fmt.Errorf("spec.terraform.timeout %q: want a duration of at least 1s, such as 30m", tf.Timeout)
		}
		t.spec.TimeoutSeconds = int(min(d.Round(time.Second)/time.Second, taskspec.MaxTerraformTimeoutSeconds+1))
	}
	if tf.Module != "" {
		m, err := packModule(relativeTo(dir, tf.Module), tf.Path)
		if err != nil {
			return nil, fmt.Errorf("spec.terraform.module %s: %w", tf.Module, err)
		}
		m.from = tf.Module
		t.module, t.spec.Artifact = m, m.digest
	}
	if err := t.spec.Validate(); err != nil {
		return nil, fmt.Errorf("spec.terraform: %w", err)
	}
	enc, err := json.Marshal(t.spec) //nolint:gosec // Validate made Password a vault reference, never a secret
	if err != nil {
		return nil, fmt.Errorf("spec.terraform: %w", err)
	}
	if err := taskspec.Validate(taskspec.KindTerraform, enc); err != nil {
		return nil, fmt.Errorf("spec.terraform: %w", err)
	}
	t.encoded = enc
	return t, nil
}

// summary says where the module comes from.
func (t *terraformTask) summary() string {
	if m := t.module; m != nil {
		s := fmt.Sprintf("module packed from %s (%s), %s", m.from, plural(int64(m.files), "file"), plural(int64(len(m.archive)), "byte"))
		if len(m.skipped) > 0 {
			s += "; left out " + strings.Join(m.skipped, ", ")
		}
		return s + "."
	}
	if t.spec.URL != "" {
		return "module " + t.spec.URL + "."
	}
	return "module artifact " + t.spec.Artifact + "."
}

// skippedModuleDirs and skippedModuleFile name what a module directory
// holds that is no part of the module: provider caches, local state,
// version control, and variable files, which may hold secrets (values go
// in spec.terraform.variables, secrets in sensitiveVariables as vault
// references).
var skippedModuleDirs = []string{".terraform", ".git", "terraform.tfstate.d"}

func skippedModuleFile(name string) bool {
	base := path.Base(name)
	return strings.HasSuffix(base, ".tfstate") || strings.Contains(base, ".tfstate.") ||
		strings.HasSuffix(base, ".tfvars") || strings.HasSuffix(base, ".tfvars.json") ||
		base == "crash.log" || (strings.HasPrefix(base, "crash.") && strings.HasSuffix(base, ".log"))
}

// packModule packs the module directory dir into a tar.gz whose bytes
// depend only on the files' names and contents: entries sorted by name,
// with fixed times, modes and owners. The module itself (the directory
// modulePath names inside it, or its root) must hold .tf files.
func packModule(dir, modulePath string) (*packedModule, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, errors.New("not a directory; give an archive as url (https://) or as an uploaded artifact (sha256:…)")
	}
	var (
		files   []packFile
		total   int64
		skipped []string
	)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		name := filepath.ToSlash(rel)
		info, err := os.Stat(p) // follows a link to what it names
		if err != nil {
			return err
		}
		if info.IsDir() {
			if d.Type()&fs.ModeSymlink != 0 {
				return fmt.Errorf("%s is a link to a directory; copy the directory in", name)
			}
			if slices.Contains(skippedModuleDirs, d.Name()) {
				skipped = append(skipped, name+"/")
				return filepath.SkipDir
			}
			return nil
		}
		if skippedModuleFile(name) {
			skipped = append(skipped, name)
			return nil
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", name)
		}
		if err := moduleCaps.admit(name, info.Size(), len(files), total); err != nil {
			return err
		}
		data, err := readBoundedFile("spec.terraform.module", p, maxModuleFileBytes)
		if err != nil {
			return err
		}
		total += int64(len(data))
		files = append(files, packFile{name: name, data: data})
		return nil
	})
	if err != nil {
		return nil, err
	}
	root := modulePath
	hasTF := slices.ContainsFunc(files, func(f packFile) bool {
		d := path.Dir(f.name)
		if d == "." {
			d = ""
		}
		return d == root && (strings.HasSuffix(f.name, ".tf") || strings.HasSuffix(f.name, ".tf.json"))
	})
	if !hasTF {
		where := "the directory"
		if root != "" {
			where = "spec.terraform.path " + root
		}
		return nil, fmt.Errorf("%s holds no .tf or .tf.json file: not a Terraform module", where)
	}
	slices.SortFunc(files, func(a, b packFile) int { return strings.Compare(a.name, b.name) })
	packed, err := packTarGz(files, "", tar.FormatPAX, maxModuleArchive)
	if err != nil {
		return nil, err
	}
	// The agent reads it with these checks; refuse here what it would.
	if _, err := archive.ReadTarGz(bytes.NewReader(packed), archive.Options{}); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	sum := sha256.Sum256(packed)
	return &packedModule{
		archive: packed, digest: taskspec.ArtifactDigestPrefix + hex.EncodeToString(sum[:]),
		files: len(files), skipped: skipped,
	}, nil
}

// planCounts renders a plan's counts as terraform does: "1 to add, 0 to
// change, 2 to destroy".
func planCounts(p *v1.PlanSummary) string {
	return fmt.Sprintf("%d to add, %d to change, %d to destroy", p.GetAdd(), p.GetChange(), p.GetDestroy())
}

// planShort renders a plan's counts for a table column: "+1 ~0 -2".
func planShort(p *v1.PlanSummary) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("+%d ~%d -%d", p.GetAdd(), p.GetChange(), p.GetDestroy())
}

// resourceSymbols mark each planned action as terraform does; the
// destroying ones are also written in capitals.
var resourceSymbols = map[string]string{
	taskspec.ResourceCreate:  "+",
	taskspec.ResourceUpdate:  "~",
	taskspec.ResourceDelete:  "-",
	taskspec.ResourceReplace: "-/+",
}

// planLines renders a plan's resources, one per line, destroys and
// replacements highlighted.
func planLines(p *v1.PlanSummary) []string {
	lines := make([]string, 0, len(p.GetResources()))
	for _, r := range p.GetResources() {
		action := r.GetAction()
		symbol, ok := resourceSymbols[action]
		if !ok {
			symbol = "?"
		}
		label := "(" + safeText(action) + ")"
		if action == taskspec.ResourceDelete || action == taskspec.ResourceReplace {
			label = "<= " + strings.ToUpper(safeText(action)) + ": destroys " + safeText(r.GetAddress())
		}
		lines = append(lines, fmt.Sprintf("%-3s %s  %s", symbol, safeText(r.GetAddress()), label))
	}
	if n := p.GetOmitted(); n > 0 {
		lines = append(lines, fmt.Sprintf("... and %s NOT LISTED: the agent reports the first %d; the counts above and the digest cover them all",
			plural(int64(n), "more changed resource"), len(p.GetResources())))
	}
	return lines
}

// safeText quotes s when it holds what a terminal would interpret:
// resource addresses and outputs come from the agent.
func safeText(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			return strconv.Quote(s)
		}
	}
	return s
}

// outputLines renders a revision's outputs (a JSON object) as
// "name = value" lines sorted by name, values as compact JSON.
func outputLines(doc []byte) []string {
	var outputs map[string]json.RawMessage
	if err := json.Unmarshal(doc, &outputs); err != nil {
		return []string{"(not a JSON object)"}
	}
	names := make([]string, 0, len(outputs))
	for k := range outputs {
		names = append(names, k)
	}
	slices.Sort(names)
	lines := make([]string, len(names))
	for i, k := range names {
		var compact bytes.Buffer
		v := string(outputs[k])
		if json.Compact(&compact, outputs[k]) == nil {
			v = compact.String()
		}
		lines[i] = safeText(k) + " = " + safeText(v)
	}
	return lines
}
