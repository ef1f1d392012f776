package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/outposthq/outpost/internal/taskspec"
)

// manifestsSpec returns the decoded spec of the task the fake hub holds.
func manifestsSpec(t *testing.T, h *harness, id string) taskspec.Manifests {
	t.Helper()
	task, _ := h.hub.snapshot(id)
	if task == nil {
		t.Fatalf("no task %s was queued", id)
	}
	if task.GetKind() != taskspec.KindManifests {
		t.Errorf("kind = %q, want manifests", task.GetKind())
	}
	var s taskspec.Manifests
	if err := taskspec.Decode(task.GetSpec(), &s); err != nil {
		t.Fatalf("the queued spec is not a valid manifests spec: %v\n%s", err, task.GetSpec())
	}
	return s
}

func TestTaskRunManifestsFromFiles(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	args := []string{"task", "run", "--env", "prod", "--kind", "manifests", "--id", "t-web", "--release", "web",
		"--namespace", "shop", "--bundle", "testdata/bundle/web,testdata/bundle/extra.yaml"}
	r := h.mustRun(args...)
	golden(t, "task_run_manifests", h.normalize("$ outpost "+strings.Join(args, " ")+"\n"+r.stdout+"--- stderr ---\n"+r.stderr))

	s := manifestsSpec(t, h, "t-web")
	// The bundle is the directory's files in name order, then extra.yaml;
	// README.md and the subdirectory are left out.
	golden(t, "task_run_manifests_bundle", s.Bundle)
	if s.Release != "web" || s.Namespace != "shop" || s.Revision != 0 || s.Adopt || !s.PruneEnabled() || s.Artifact != "" {
		t.Errorf("spec = %+v, want release web in shop, next revision, no adoption, pruning, inline bundle", s)
	}
	task, _ := h.hub.snapshot("t-web")
	if !slices.Equal(task.GetConflictKeys(), []string{"manifests/web"}) {
		t.Errorf("conflict keys = %v, want [manifests/web]", task.GetConflictKeys())
	}
}

func TestTaskRunManifestsOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, s taskspec.Manifests, keys []string)
	}{
		{
			name: "revision, adopt and no-prune reach the spec",
			args: []string{"--revision", "7", "--adopt", "--no-prune"},
			check: func(t *testing.T, s taskspec.Manifests, _ []string) {
				if s.Revision != 7 || !s.Adopt || s.Prune == nil || *s.Prune {
					t.Errorf("spec = revision %d, adopt %v, prune %v; want 7, true, false", s.Revision, s.Adopt, s.Prune)
				}
			},
		},
		{
			name: "the release's conflict key is added once beside the operator's own",
			args: []string{"--conflict-key", "db/migrations", "--conflict-key", "manifests/web"},
			check: func(t *testing.T, _ taskspec.Manifests, keys []string) {
				if !slices.Equal(keys, []string{"db/migrations", "manifests/web"}) {
					t.Errorf("conflict keys = %v", keys)
				}
			},
		},
		{
			name: "--kind defaults to manifests when a bundle is given",
			args: nil,
			check: func(t *testing.T, s taskspec.Manifests, _ []string) {
				if s.Release != "web" {
					t.Errorf("release = %q", s.Release)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t).login()
			h.mustRun(append([]string{"task", "run", "--env", "prod", "--id", "t-opt", "--release", "web",
				"--bundle", "testdata/bundle/extra.yaml"}, tt.args...)...)
			task, _ := h.hub.snapshot("t-opt")
			tt.check(t, manifestsSpec(t, h, "t-opt"), task.GetConflictKeys())
		})
	}
}

func TestTaskRunManifestsUploadsALargeBundle(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	dir := t.TempDir()
	// Three ConfigMaps of 120 KiB each: each object is well within the API
	// server's limit, the bundle is not within a spec's.
	for i := range 3 {
		doc := fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big-%d\ndata:\n  blob: %s\n", i, strings.Repeat("x", 120<<10))
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("big-%d.yaml", i)), []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := h.mustRun("task", "run", "--env", "prod", "--kind", "manifests", "--id", "t-big", "--release", "big", "--bundle", dir)

	s := manifestsSpec(t, h, "t-big")
	if s.Bundle != "" || !taskspec.IsArtifactDigest(s.Artifact) {
		t.Fatalf("spec carries bundle of %d bytes and artifact %q; want only an artifact", len(s.Bundle), s.Artifact)
	}
	task, _ := h.hub.snapshot("t-big")
	if !slices.Equal(task.GetArtifacts(), []string{s.Artifact}) {
		t.Errorf("task artifacts = %v, want [%s]", task.GetArtifacts(), s.Artifact)
	}
	h.hub.mu.Lock()
	content := h.hub.artifacts[s.Artifact]
	h.hub.mu.Unlock()
	sum := sha256.Sum256(content)
	if "sha256:"+hex.EncodeToString(sum[:]) != s.Artifact || strings.Count(string(content), "kind: ConfigMap") != 3 {
		t.Errorf("the uploaded artifact (%d bytes) is not the three-object bundle", len(content))
	}
	if !strings.Contains(r.stderr, "Uploaded the bundle") {
		t.Errorf("stderr does not say the bundle was uploaded:\n%s", r.stderr)
	}
	if spec := task.GetSpec(); len(spec) > maxInlineSpecBytes {
		t.Errorf("spec is %d bytes", len(spec))
	}
}

func TestTaskRunManifestsRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	broken := write("broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n---\nkind: ConfigMap\nmetadata:\n  name: no-api-version\n")
	badJSON := write("bad.json", `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}} {"oops"`)
	empty := write("empty.yaml", "# nothing yet\n---\n")
	noYAML := filepath.Dir(write("docs/README.md", "docs"))
	huge := filepath.Join(dir, "huge.yaml")
	if err := os.WriteFile(huge, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, maxBundleBytes+1); err != nil {
		t.Fatal(err)
	}
	ok := "testdata/bundle/extra.yaml"
	tests := []struct {
		name    string
		args    []string
		wantErr []string
	}{
		{"a bundle without a release is refused", []string{"--bundle", ok}, []string{"--release"}},
		{"a release without a bundle is refused", []string{"--release", "web"}, []string{"--bundle"}},
		{"an invalid release name is refused before anything is sent", []string{"--release", "Web_App", "--bundle", ok}, []string{"release", "DNS-1123"}},
		{"a bundle with --spec-json is refused", []string{"--release", "web", "--bundle", ok, "--spec-json", "{}"}, []string{"not both"}},
		{"bundle flags with another kind are refused", []string{"--kind", "http", "--release", "web", "--bundle", ok}, []string{"--kind http"}},
		{"a malformed object is reported with its file and document", []string{"--release", "web", "--bundle", broken}, []string{broken, "document 2", "apiVersion"}},
		{"malformed JSON is reported with its file", []string{"--release", "web", "--bundle", badJSON}, []string{badJSON}},
		{"a bundle with no objects would prune everything and is refused", []string{"--release", "web", "--bundle", empty}, []string{"no objects", "prune"}},
		{"a directory without manifests is refused", []string{"--release", "web", "--bundle", noYAML}, []string{noYAML, "*.yaml"}},
		{"a missing file is named", []string{"--release", "web", "--bundle", filepath.Join(dir, "missing.yaml")}, []string{"missing.yaml"}},
		{"a bundle over 64 MiB is refused", []string{"--release", "web", "--bundle", huge}, []string{"64 MiB", "split"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t).login()
			r := h.run(append([]string{"task", "run", "--env", "prod", "--id", "t-refused"}, tt.args...)...)
			assertErrorContains(t, r.err, tt.wantErr...)
			if task, _ := h.hub.snapshot("t-refused"); task != nil {
				t.Error("a task was queued anyway")
			}
			h.hub.mu.Lock()
			defer h.hub.mu.Unlock()
			if len(h.hub.headers) > 0 {
				t.Error("an artifact was uploaded anyway")
			}
		})
	}
}

// The spec the CLI builds must be one the agent decodes as is.
func TestTaskRunManifestsSpecIsStrictJSON(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	h.mustRun("task", "run", "--env", "prod", "--kind", "manifests", "--id", "t-json", "--release", "web", "--bundle", "testdata/bundle/extra.yaml", "--no-prune")
	task, _ := h.hub.snapshot("t-json")
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(task.GetSpec(), &fields); err != nil {
		t.Fatal(err)
	}
	keys := slices.Sorted(maps.Keys(fields))
	if want := []string{"bundle", "prune", "release"}; !slices.Equal(keys, want) {
		t.Errorf("spec fields = %v, want %v", keys, want)
	}
	if err := taskspec.Validate(taskspec.KindManifests, task.GetSpec()); err != nil {
		t.Errorf("taskspec.Validate: %v", err)
	}
}
