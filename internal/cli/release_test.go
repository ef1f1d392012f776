package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/taskspec"
)

// manifestsRelease is a release file of release web built from the
// bundle directory of the task run tests.
func manifestsRelease(bundleDir string) string {
	return releaseHeader + `spec:
  description: web 1.4.2
  ignore:
    - group: apps
      kind: Deployment
      paths: ["/spec/replicas", "/metadata/annotations/deploy~1hash"]
  manifests:
    namespace: shop
    files: [` + bundleDir + `, extra.yaml]
`
}

// releaseDir copies the task run tests' bundle next to a release file
// that names it relatively, and returns the release file's path.
func releaseDir(t *testing.T, content string) string {
	t.Helper()
	dir := copyTree(t, "testdata/bundle", time.Now(), 0o644)
	return writeRelease(t, dir, "release.yaml", content)
}

func TestReleaseApply(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	path := releaseDir(t, manifestsRelease("web"))

	first := h.mustRun("release", "apply", "-f", path)
	second := h.mustRun("release", "apply", "-f", path)
	reqs := h.hub.appliedRequests()
	if len(reqs) != 2 {
		t.Fatalf("the hub got %d ApplyRelease calls, want 2", len(reqs))
	}

	t.Run("the first apply creates the next revision and says so", func(t *testing.T) {
		if first.stdout != "release web: revision 5 created (task rt-web-5)\n" {
			t.Errorf("stdout = %q", first.stdout)
		}
	})
	t.Run("applying the same file again sends the same request and changes nothing", func(t *testing.T) {
		if !proto.Equal(reqs[0], reqs[1]) {
			t.Errorf("the two requests differ:\n%v\n%v", reqs[0], reqs[1])
		}
		if second.stdout != "release web: unchanged (revision 5)\n" {
			t.Errorf("stdout = %q", second.stdout)
		}
	})
	t.Run("the request carries the release's kind, mode, ignore rules and description", func(t *testing.T) {
		r := reqs[0]
		want := &v1.ApplyReleaseRequest{Environment: "prod", Name: "web", Kind: "manifests", Mode: v1.ReleaseMode_RELEASE_MODE_CORRECT,
			Ignore:      []*v1.IgnoreRule{{Group: "apps", Kind: "Deployment", Paths: []string{"/spec/replicas", "/metadata/annotations/deploy~1hash"}}},
			Description: "web 1.4.2", Spec: r.GetSpec()}
		if !proto.Equal(r, want) {
			t.Errorf("request = %v\nwant %v", r, want)
		}
	})
	t.Run("release get shows the new revision's ignore rules and description", func(t *testing.T) {
		r := h.mustRun("release", "get", "web", "--env", "prod")
		for _, want := range []string{"IGNORE:       apps/Deployment /spec/replicas, /metadata/annotations/deploy~1hash", "DESCRIPTION:  web 1.4.2", "5 wanted, 4 applied", "SYNC:         pending"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("release get does not show %q:\n%s", want, r.stdout)
			}
		}
	})
	t.Run("the spec is the one task run builds from the same files", func(t *testing.T) {
		dir := filepath.Dir(path)
		h.mustRun("task", "run", "--env", "prod", "--id", "t-same", "--release", "web", "--namespace", "shop",
			"--bundle", filepath.Join(dir, "web")+","+filepath.Join(dir, "extra.yaml"))
		task, _ := h.hub.snapshot("t-same")
		if !bytes.Equal(task.GetSpec(), reqs[0].GetSpec()) {
			t.Errorf("release spec:\n%s\ntask run spec:\n%s", reqs[0].GetSpec(), task.GetSpec())
		}
	})
}

func TestReleaseApplyNewRevisionWhenContentChanges(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	path := releaseDir(t, manifestsRelease("web"))
	h.mustRun("release", "apply", "-f", path)
	// The operator edits a manifest.
	deploy := filepath.Join(filepath.Dir(path), "web", "20-deployment.yaml")
	b, err := os.ReadFile(deploy) //nolint:gosec // a test file
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(deploy, bytes.ReplaceAll(b, []byte("1.4.2"), []byte("1.4.3")), 0o600); err != nil {
		t.Fatal(err)
	}
	r := h.mustRun("release", "apply", "-f", path)
	if !strings.Contains(r.stdout, "revision 6 created") {
		t.Errorf("stdout = %q, want a new revision", r.stdout)
	}
}

func TestReleaseApplyHelm(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	content := strings.Replace(releaseHeader, "name: web", "name: storefront", 1) + `spec:
  mode: detect
  helm:
    chart: chart
    namespace: shop
    releaseName: shop-web
    values: [base.yaml, prod.yaml]
    set: ["image.tag=1.4.2"]
    wait: true
    timeout: 2m
    historyMax: 5
`
	apply := func(at time.Time, perm os.FileMode) *v1.ApplyReleaseRequest {
		dir := t.TempDir()
		if err := os.Rename(copyTree(t, testChart, at, perm), filepath.Join(dir, "chart")); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"base.yaml", "prod.yaml"} {
			b, err := os.ReadFile(filepath.Join("testdata/helm/values", f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		h.mustRun("release", "apply", "-f", writeRelease(t, dir, "release.yaml", content))
		reqs := h.hub.appliedRequests()
		return reqs[len(reqs)-1]
	}
	// The same chart and values, copied with other times and modes.
	first := apply(time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC), 0o600)
	second := apply(time.Now(), 0o644)

	t.Run("a chart directory packs to the same request whatever the files' times and modes", func(t *testing.T) {
		if !proto.Equal(first, second) {
			t.Errorf("the two requests differ")
		}
		_, revs := h.hub.releaseSnapshot("prod", "storefront")
		if len(revs) != 1 {
			t.Errorf("the release has %d revisions, want 1: the second apply must make none", len(revs))
		}
	})
	t.Run("the spec is the one task run builds from the same chart, values and options", func(t *testing.T) {
		chart := copyTree(t, testChart, time.Now(), 0o644)
		h.mustRun("task", "run", "--env", "prod", "--id", "t-helm", "--release", "shop-web", "--namespace", "shop", "--chart", chart,
			"-f", "testdata/helm/values/base.yaml", "-f", "testdata/helm/values/prod.yaml", "--set", "image.tag=1.4.2",
			"--helm-wait", "--helm-timeout", "2m", "--history-max", "5")
		task, _ := h.hub.snapshot("t-helm")
		if !bytes.Equal(task.GetSpec(), first.GetSpec()) {
			t.Errorf("release spec:\n%s\ntask run spec:\n%s", first.GetSpec(), task.GetSpec())
		}
		if first.GetKind() != taskspec.KindHelm || first.GetMode() != v1.ReleaseMode_RELEASE_MODE_DETECT {
			t.Errorf("kind %s, mode %v; want helm, detect", first.GetKind(), first.GetMode())
		}
	})
}

func TestReleaseApplyHelmFromARepository(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	path := writeRelease(t, h.dir, "release.yaml", strings.Replace(releaseHeader, "name: web", "name: storefront", 1)+`spec:
  helm:
    repo: https://charts.example
    chart: web
    version: 1.x
    username: deploy
    password: vault://k8s/chart-creds/password
    namespace: shop
`)
	h.mustRun("release", "apply", "-f", path)
	var s taskspec.Helm
	if err := json.Unmarshal(h.hub.appliedRequests()[0].GetSpec(), &s); err != nil {
		t.Fatal(err)
	}
	want := taskspec.HelmChart{Repository: "https://charts.example", Name: "web", Version: "1.x", Username: "deploy", Password: "vault://k8s/chart-creds/password"}
	if s.Chart == nil || !reflect.DeepEqual(*s.Chart, want) || s.Release != "storefront" {
		t.Errorf("spec = %+v, chart %+v; want release storefront from %+v", s, s.Chart, want)
	}
}

func TestReleaseApplyUploadsLargeBundles(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	dir := t.TempDir()
	var big strings.Builder
	for i := range 40 {
		big.WriteString("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c" + strings.Repeat("x", 2) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + "\ndata:\n  v: \"" + strings.Repeat("y", 8<<10) + "\"\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "big.yaml"), []byte(big.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	path := writeRelease(t, dir, "release.yaml", releaseHeader+"spec:\n  manifests:\n    files: [big.yaml]\n")
	h.mustRun("release", "apply", "-f", path)
	h.mustRun("release", "apply", "-f", path)
	reqs := h.hub.appliedRequests()
	if len(reqs[0].GetArtifacts()) != 1 || !proto.Equal(reqs[0], reqs[1]) {
		t.Fatalf("requests = %v / %v; want the same single artifact twice", reqs[0].GetArtifacts(), reqs[1].GetArtifacts())
	}
	var s taskspec.Manifests
	if err := json.Unmarshal(reqs[0].GetSpec(), &s); err != nil {
		t.Fatal(err)
	}
	if s.Bundle != "" || s.Artifact != reqs[0].GetArtifacts()[0] {
		t.Errorf("spec names artifact %q and holds %d bytes inline; want the uploaded artifact only", s.Artifact, len(s.Bundle))
	}
}

func TestReleaseApplyFromStdinWithSeveralReleases(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	doc := func(name string) string {
		return "apiVersion: outpost.dev/v1\nkind: Release\nmetadata:\n  name: " + name + "\nspec:\n  manifests:\n    bundle: |\n      apiVersion: v1\n      kind: ConfigMap\n      metadata: {name: " + name + "}\n"
	}
	h.stdin = doc("alpha") + "---\n" + doc("beta")
	r := h.mustRun("release", "apply", "-f", "-", "--env", "staging")
	want := "release alpha: revision 1 created (task rt-alpha-1)\nrelease beta: revision 1 created (task rt-beta-1)\n"
	if r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	for _, req := range h.hub.appliedRequests() {
		if req.GetEnvironment() != "staging" {
			t.Errorf("release %s applied to %q, want staging from --env", req.GetName(), req.GetEnvironment())
		}
	}
}

func TestReleaseApplyWait(t *testing.T) {
	t.Parallel()
	content := releaseHeader + "spec:\n  manifests:\n    bundle: |\n      apiVersion: v1\n      kind: ConfigMap\n      metadata: {name: settings}\n"
	tests := []struct {
		name     string
		states   []v1.ReleaseSync
		code     int
		contains string
	}{
		{"a revision that becomes in sync ends the wait with exit 0",
			[]v1.ReleaseSync{v1.ReleaseSync_RELEASE_SYNC_PENDING, v1.ReleaseSync_RELEASE_SYNC_IN_SYNC}, ExitOK, "release web: revision 5 applied, in-sync"},
		{"a revision applied but drifted also ends the wait with exit 0",
			[]v1.ReleaseSync{v1.ReleaseSync_RELEASE_SYNC_DRIFTED}, ExitOK, "revision 5 applied, drifted"},
		{"a failed revision exits 1 with the release's error",
			[]v1.ReleaseSync{v1.ReleaseSync_RELEASE_SYNC_PENDING, v1.ReleaseSync_RELEASE_SYNC_FAILED}, ExitFailure, `deployments.apps "web" is forbidden`},
		{"a revision still pending when the timeout passes exits 2",
			[]v1.ReleaseSync{v1.ReleaseSync_RELEASE_SYNC_PENDING}, ExitTimeout, "still pending"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t).login()
			h.hub.scriptRelease("prod", "web", tt.states...)
			r := h.run("release", "apply", "-f", writeRelease(t, h.dir, "release.yaml", content), "--wait", "--timeout", "200ms")
			if got := ExitCode(r.err); got != tt.code {
				t.Fatalf("exit code %d (%v), want %d", got, r.err, tt.code)
			}
			if out := r.stdout + errString(r.err); !strings.Contains(out, tt.contains) {
				t.Errorf("output %q does not contain %q", out, tt.contains)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestReleaseViews(t *testing.T) {
	t.Parallel()
	tests := []struct {
		golden string
		args   []string
	}{
		{"release_list", []string{"release", "list"}},
		{"release_list_prod", []string{"release", "list", "--env", "prod"}},
		{"release_get", []string{"release", "get", "web", "--env", "prod"}},
		{"release_get_failed", []string{"release", "get", "shop"}},
		{"release_history", []string{"release", "history", "web", "--env", "prod"}},
		{"release_diff", []string{"release", "diff", "web", "--env", "prod"}},
		{"release_diff_from_to", []string{"release", "diff", "web", "--env", "prod", "--from", "1", "--to", "3"}},
		{"release_diff_same", []string{"release", "diff", "web", "--env", "prod", "--from", "2", "--to", "4"}},
		{"env_status", []string{"env", "status", "prod"}},
	}
	for _, tt := range tests {
		t.Run(tt.golden+" shows what the operator needs", func(t *testing.T) {
			t.Parallel()
			h := newHarness(t).login()
			r := h.mustRun(tt.args...)
			golden(t, tt.golden, "$ outpost "+strings.Join(tt.args, " ")+"\n"+r.stdout)
		})
	}
}

func TestReleaseGetShowsDrift(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	r := h.mustRun("release", "get", "web", "--env", "prod")
	for _, want := range []string{
		"Deployment shop/web: spec.template.spec.containers[name=web].image, spec.replicas",
		"Service shop/web: deleted",
		"2 objects, found 2026-03-01 11:55:00 UTC (5m ago), corrected",
		"4 (applied)",
		"rollback to 2",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("release get does not show %q:\n%s", want, r.stdout)
		}
	}
	t.Run("-o json gives the release and its wanted revision", func(t *testing.T) {
		r := h.mustRun("release", "get", "web", "--env", "prod", "-o", "json")
		var got struct {
			Release  struct{ Drift []struct{ Fields []string } }
			Revision struct{ Revision string }
		}
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("%v\n%s", err, r.stdout)
		}
		if len(got.Release.Drift) != 2 || got.Revision.Revision != "4" {
			t.Errorf("json = %s", r.stdout)
		}
	})
	t.Run("a name in several environments needs --env", func(t *testing.T) {
		r := h.run("release", "get", "web")
		assertErrorContains(t, r.err, "release web exists in prod and staging: pass --env")
	})
	t.Run("an unknown release says how to find the releases", func(t *testing.T) {
		r := h.run("release", "get", "nope")
		assertErrorContains(t, r.err, "not found in any environment", "outpost release list")
	})
}

func TestReleaseDiffOfAFile(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	dir := t.TempDir()
	bundle := filepath.Join(dir, "web.yaml")
	if err := os.WriteFile(bundle, []byte(webBundle("1.1.0", false)), 0o600); err != nil {
		t.Fatal(err)
	}
	content := strings.Replace(releaseHeader, "name: web", "name: web", 1) + "spec:\n  manifests:\n    namespace: shop\n    files: [web.yaml]\n"
	path := writeRelease(t, dir, "release.yaml", content)

	t.Run("a file equal to the newest revision changes nothing", func(t *testing.T) {
		r := h.mustRun("release", "diff", "-f", path)
		if !strings.Contains(r.stdout, "release web: applying") || !strings.Contains(r.stdout, "changes nothing (revision 4)") {
			t.Errorf("stdout = %q", r.stdout)
		}
	})
	t.Run("a changed file shows what applying it would change, and applies nothing", func(t *testing.T) {
		if err := os.WriteFile(bundle, []byte(webBundle("1.5.0", true)), 0o600); err != nil {
			t.Fatal(err)
		}
		r := h.mustRun("release", "diff", "-f", path)
		golden(t, "release_diff_file", h.normalize(strings.ReplaceAll(r.stdout, dir, "$DIR")))
		if n := len(h.hub.appliedRequests()); n != 0 {
			t.Errorf("diff sent %d ApplyRelease calls", n)
		}
	})
	t.Run("a new release is diffed against nothing", func(t *testing.T) {
		p := writeRelease(t, dir, "new.yaml", strings.Replace(content, "name: web", "name: fresh", 1))
		r := h.mustRun("release", "diff", "-f", p)
		if !strings.Contains(r.stdout, "--- (no release)") || !strings.Contains(r.stdout, "+kind: manifests") {
			t.Errorf("stdout = %q", r.stdout)
		}
	})
}

func TestReleaseRollback(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	r := h.mustRun("release", "rollback", "web", "--env", "prod", "--to", "1")
	if r.stdout != "release web: revision 5 created, rolling back to revision 1 (task rt-web-5)\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	rel, revs := h.hub.releaseSnapshot("prod", "web")
	if len(revs) != 5 || revs[4].GetRolledBackFrom() != 1 || !bytes.Equal(revs[4].GetSpec(), revs[0].GetSpec()) || rel.GetRevision() != 5 {
		t.Errorf("revision 5 = %v, want revision 1's content", revs[len(revs)-1])
	}
	t.Run("history shows the rollback", func(t *testing.T) {
		r := h.mustRun("release", "history", "web", "--env", "prod")
		if !strings.Contains(r.stdout, "rollback to 1\n") {
			t.Errorf("history:\n%s", r.stdout)
		}
	})
	t.Run("--wait waits until the new revision is applied", func(t *testing.T) {
		h.hub.scriptRelease("prod", "web", v1.ReleaseSync_RELEASE_SYNC_PENDING, v1.ReleaseSync_RELEASE_SYNC_IN_SYNC)
		r := h.mustRun("release", "rollback", "web", "--env", "prod", "--to", "2", "--wait")
		if !strings.Contains(r.stdout, "release web: revision 6 applied, in-sync") {
			t.Errorf("stdout = %q", r.stdout)
		}
	})
	t.Run("a rollback needs --to", func(t *testing.T) {
		assertErrorContains(t, h.run("release", "rollback", "web", "--env", "prod").err, "--to N", "release history")
	})
	t.Run("a revision that does not exist is the hub's error", func(t *testing.T) {
		assertErrorContains(t, h.run("release", "rollback", "web", "--env", "prod", "--to", "99").err, "has no revision 99")
	})
}

func TestReleaseDelete(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		terminal bool
		stdin    string
		args     []string
		deleted  bool
		want     string
	}{
		{name: "without a terminal to ask on, --yes is required", want: "pass --yes"},
		{name: "on a terminal, no answer deletes nothing", terminal: true, stdin: "\n", want: "not confirmed; nothing was deleted"},
		{name: "on a terminal, n deletes nothing", terminal: true, stdin: "n\n", want: "not confirmed"},
		{name: "on a terminal, y deletes", terminal: true, stdin: "y\n", deleted: true},
		{name: "--yes deletes without asking", args: []string{"--yes"}, deleted: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t).login()
			h.terminal, h.stdin = tt.terminal, tt.stdin
			r := h.run(append([]string{"release", "delete", "web", "--env", "prod"}, tt.args...)...)
			deleted := slices.Contains(h.hub.deleted, "prod/web")
			if deleted != tt.deleted {
				t.Fatalf("deleted = %v, want %v (err %v)", deleted, tt.deleted, r.err)
			}
			if !tt.deleted {
				assertErrorContains(t, r.err, tt.want)
				return
			}
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.stdout != "release web: deleting; its objects will be pruned from prod (task rt-web-delete)\n" {
				t.Errorf("stdout = %q", r.stdout)
			}
			if tt.terminal && !strings.Contains(r.stderr, "Delete release web in prod?") {
				t.Errorf("stderr = %q, want the question", r.stderr)
			}
		})
	}
	t.Run("--wait waits until the release is gone", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t).login()
		h.hub.scriptRelease("prod", "web", v1.ReleaseSync_RELEASE_SYNC_DELETING, v1.ReleaseSync_RELEASE_SYNC_UNSPECIFIED)
		r := h.mustRun("release", "delete", "web", "--env", "prod", "--yes", "--wait")
		if !strings.HasSuffix(r.stdout, "release web: deleted\n") {
			t.Errorf("stdout = %q", r.stdout)
		}
	})
}

func TestEnvStatusPicksTheOnlyEnvironment(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	assertErrorContains(t, h.run("env", "status").err, "name the environment, one of prod or staging")
	h.hub.mu.Lock()
	h.hub.envs = h.hub.envs[1:]
	h.hub.mu.Unlock()
	r := h.mustRun("env", "status")
	if !strings.Contains(r.stdout, "acme/staging") || !strings.Contains(r.stdout, "RELEASES:     1: 1 in-sync") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
}

func TestReleaseHelpExplainsTheFileFormat(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.mustRun("release", "--help")
	for _, want := range []string{"apiVersion: outpost.dev/v1", "mode: correct", "ignore:", "manifests:", "helm:", "releaseName", "apply", "rollback"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("release --help does not mention %q", want)
		}
	}
}

func TestReleaseDiffDefaults(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	t.Run("a release with a revision not applied yet compares the applied one with the wanted one", func(t *testing.T) {
		path := writeRelease(t, h.dir, "release.yaml", releaseHeader+"spec:\n  manifests:\n    bundle: |\n      apiVersion: v1\n      kind: ConfigMap\n      metadata: {name: only}\n")
		h.mustRun("release", "apply", "-f", path)
		r := h.mustRun("release", "diff", "web", "--env", "prod")
		if !strings.HasPrefix(r.stdout, "--- revision 4\n+++ revision 5\n") {
			t.Errorf("diff starts %q, want revision 4 against 5", r.stdout[:min(len(r.stdout), 40)])
		}
	})
	t.Run("a release's first revision is compared with nothing", func(t *testing.T) {
		r := h.mustRun("release", "diff", "shop", "--env", "prod")
		for _, want := range []string{"--- (nothing)\n+++ revision 1\n", "+kind: helm", "+    replicas: 3"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("diff does not contain %q:\n%s", want, r.stdout)
			}
		}
	})
	t.Run("-o json gives the diff with what was compared", func(t *testing.T) {
		r := h.mustRun("release", "diff", "web", "--env", "prod", "--from", "1", "--to", "2", "-o", "json")
		var got releaseDiff
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("%v\n%s", err, r.stdout)
		}
		if got.From != "revision 1" || got.To != "revision 2" || !strings.Contains(got.Diff, "+      - image: ghcr.io/example/web:1.1.0") {
			t.Errorf("json = %+v", got)
		}
	})
}

func TestReleaseDiffOfAHelmRelease(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	dir := t.TempDir()
	if err := os.Rename(copyTree(t, testChart, time.Now(), 0o644), filepath.Join(dir, "chart")); err != nil {
		t.Fatal(err)
	}
	content := strings.Replace(releaseHeader, "name: web", "name: storefront", 1) + "spec:\n  helm:\n    chart: chart\n    namespace: shop\n    set: [replicas=2]\n"
	path := writeRelease(t, dir, "release.yaml", content)
	r := h.mustRun("release", "apply", "-f", path)
	if !strings.Contains(r.stderr, "Release storefront (prod): chart shop-0.1.0 packed from "+filepath.Join(dir, "chart")+" (8 files)") {
		t.Errorf("stderr does not say what was packed:\n%s", r.stderr)
	}
	r = h.mustRun("release", "diff", "-f", path)
	if !strings.Contains(r.stdout, "changes nothing (revision 1)") {
		t.Errorf("diff of the file just applied = %q, want no change", r.stdout)
	}
	writeRelease(t, dir, "release.yaml", strings.Replace(content, "replicas=2", "replicas=4", 1))
	r = h.mustRun("release", "diff", "-f", path)
	if !strings.Contains(r.stdout, "-    replicas: 2\n+    replicas: 4\n") {
		t.Errorf("diff does not show the changed value:\n%s", r.stdout)
	}
	req := h.hub.appliedRequests()[0]
	text, err := renderRevision(&v1.ReleaseRevision{Kind: req.GetKind(), Spec: req.GetSpec(), Mode: req.GetMode()})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "archive: (chart archive, ") || strings.Contains(text, "H4sI") {
		t.Errorf("the chart archive is not shown as its size and digest:\n%s", text)
	}
}

func TestReleaseApplyOutputFormats(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	path := writeRelease(t, h.dir, "release.yaml", releaseHeader+"spec:\n  manifests:\n    bundle: |\n      apiVersion: v1\n      kind: ConfigMap\n      metadata: {name: only}\n")
	r := h.mustRun("release", "apply", "-f", path, "-o", "json")
	var got struct {
		Release  struct{ Name, TaskID string }
		Revision struct{ Revision string }
		Created  bool
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if got.Release.Name != "web" || got.Revision.Revision != "5" || !got.Created {
		t.Errorf("json = %s", r.stdout)
	}
	if !strings.Contains(r.stderr, "Release web (prod): 1 object inline.") {
		t.Errorf("stderr = %q", r.stderr)
	}
}

func TestStdinIsTerminal(t *testing.T) {
	t.Parallel()
	f, err := os.CreateTemp(t.TempDir(), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	for name, r := range map[string]io.Reader{"a string reader is no terminal": strings.NewReader("y\n"), "a regular file is no terminal": f} {
		t.Run(name, func(t *testing.T) {
			if stdinIsTerminal(r) {
				t.Error("stdinIsTerminal = true")
			}
		})
	}
}
