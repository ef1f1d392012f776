package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/chart/v2/loader"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/taskspec"
)

const testChart = "testdata/helm/charts/shop"

// helmTaskSpec returns the decoded spec of the task the fake hub holds,
// checked as the hub checks it.
func helmTaskSpec(t *testing.T, h *harness, id string) (taskspec.Helm, *v1.Task) {
	t.Helper()
	task, _ := h.hub.snapshot(id)
	if task == nil {
		t.Fatalf("no task %s was queued", id)
	}
	if task.GetKind() != taskspec.KindHelm {
		t.Errorf("kind = %q, want helm", task.GetKind())
	}
	var s taskspec.Helm
	if err := taskspec.Decode(task.GetSpec(), &s); err != nil {
		t.Fatalf("the queued spec is not a valid helm spec: %v\n%s", err, task.GetSpec())
	}
	return s, task
}

// runHelm queues a helm task with id t-helm from args and returns its
// spec and task.
func runHelm(t *testing.T, h *harness, args ...string) (taskspec.Helm, *v1.Task, result) {
	t.Helper()
	r := h.mustRun(append([]string{"task", "run", "--env", "prod", "--id", "t-helm"}, args...)...)
	s, task := helmTaskSpec(t, h, "t-helm")
	return s, task, r
}

func TestTaskRunHelmBuildsTheSpec(t *testing.T) {
	t.Parallel()
	ca := filepath.Join(t.TempDir(), "repo-ca.pem")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not parsed by the CLI")})
	if err := os.WriteFile(ca, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	release := []string{"--release", "shop", "--namespace", "shop"}
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, s taskspec.Helm, task *v1.Task)
	}{
		{
			name: "a chart directory alone implies a helm install with the chart inline and the release's conflict key",
			args: []string{"--chart", testChart},
			check: func(t *testing.T, s taskspec.Helm, task *v1.Task) {
				if s.Action != taskspec.HelmInstall || s.Chart == nil || len(s.Chart.Archive) == 0 || s.Chart.Artifact != "" || s.Values != nil {
					t.Errorf("spec = %+v, want an install with an inline archive and no values", s)
				}
				if !slices.Equal(task.GetConflictKeys(), []string{"helm/shop/shop"}) || len(task.GetArtifacts()) != 0 {
					t.Errorf("conflict keys %v, artifacts %v; want [helm/shop/shop] and none", task.GetConflictKeys(), task.GetArtifacts())
				}
			},
		},
		{
			name: "deploy settings reach the spec",
			args: []string{"--kind", "helm", "--helm-action", "upgrade", "--chart", testChart, "--create-namespace", "--atomic",
				"--helm-wait", "--helm-timeout", "90s", "--history-max", "5", "--adopt", "--disable-hooks", "--skip-crds", "--description", "release 42"},
			check: func(t *testing.T, s taskspec.Helm, _ *v1.Task) {
				want := taskspec.Helm{Action: "upgrade", Release: "shop", Namespace: "shop", CreateNamespace: true, Wait: true, TimeoutSeconds: 90,
					Atomic: true, HistoryMax: 5, Adopt: true, DisableHooks: true, SkipCRDs: true, Description: "release 42"}
				s.Chart = nil
				if !equalJSON(t, s, want) {
					t.Errorf("spec = %+v, want %+v", s, want)
				}
			},
		},
		{
			name: "a rollback carries the revision to return to and no chart",
			args: []string{"--helm-action", "rollback", "--rollback-to", "1", "--helm-wait", "--helm-timeout", "2m"},
			check: func(t *testing.T, s taskspec.Helm, _ *v1.Task) {
				if s.Action != taskspec.HelmRollback || s.Revision != 1 || !s.Wait || s.TimeoutSeconds != 120 || s.Chart != nil {
					t.Errorf("spec = %+v, want a rollback to 1 waiting up to 120s", s)
				}
			},
		},
		{
			name: "an uninstall may keep the history",
			args: []string{"--helm-action", "uninstall", "--keep-history"},
			check: func(t *testing.T, s taskspec.Helm, _ *v1.Task) {
				if s.Action != taskspec.HelmUninstall || !s.KeepHistory {
					t.Errorf("spec = %+v, want an uninstall keeping the history", s)
				}
			},
		},
		{
			name: "--kind helm with only the shared flags asks for the status",
			args: []string{"--kind", "helm", "--helm-action", "status"},
			check: func(t *testing.T, s taskspec.Helm, task *v1.Task) {
				if s.Action != taskspec.HelmStatus || s.Chart != nil || !slices.Equal(task.GetConflictKeys(), []string{"helm/shop/shop"}) {
					t.Errorf("spec = %+v, keys %v; want a status with the release's key", s, task.GetConflictKeys())
				}
			},
		},
		{
			name: "a chart from an HTTP repository carries its name, version, vault credentials and CA",
			args: []string{"--repo", "https://charts.example.com/stable", "--chart-name", "shop", "--version", "^1.2",
				"--username", "deploy", "--password", "vault://k8s/registry-creds/password", "--repo-ca-file", ca},
			check: func(t *testing.T, s taskspec.Helm, _ *v1.Task) {
				want := taskspec.HelmChart{Repository: "https://charts.example.com/stable", Name: "shop", Version: "^1.2",
					Username: "deploy", Password: "vault://k8s/registry-creds/password", CA: string(caPEM)}
				if s.Chart == nil || !equalJSON(t, *s.Chart, want) {
					t.Errorf("chart = %+v, want %+v", s.Chart, want)
				}
			},
		},
		{
			name: "an OCI chart is named whole by --chart",
			args: []string{"--chart", "oci://registry.example.com/charts/shop", "--version", "1.2.0", "--plain-http"},
			check: func(t *testing.T, s taskspec.Helm, _ *v1.Task) {
				want := taskspec.HelmChart{Repository: "oci://registry.example.com/charts/shop", Version: "1.2.0", PlainHTTP: true}
				if s.Chart == nil || !equalJSON(t, *s.Chart, want) {
					t.Errorf("chart = %+v, want %+v", s.Chart, want)
				}
			},
		},
		{
			name: "the operator's own conflict key stays beside the release's",
			args: []string{"--chart", testChart, "--conflict-key", "db/migrations", "--conflict-key", "helm/shop/shop"},
			check: func(t *testing.T, _ taskspec.Helm, task *v1.Task) {
				if !slices.Equal(task.GetConflictKeys(), []string{"db/migrations", "helm/shop/shop"}) {
					t.Errorf("conflict keys = %v", task.GetConflictKeys())
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t).login()
			s, task, _ := runHelm(t, h, append(slices.Clone(release), tt.args...)...)
			tt.check(t, s, task)
		})
	}
}

// equalJSON compares two values by their JSON encodings.
func equalJSON(t *testing.T, got, want any) bool {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(g, w)
}

// copyTree copies dir into a fresh directory, giving every file and
// directory the time at and mode bits perm (directories get x added).
func copyTree(t *testing.T, dir string, at time.Time, perm fs.FileMode) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(dir))
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			dirs = append(dirs, target)
			return os.MkdirAll(target, 0o700)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(target, data, perm); err != nil {
			return err
		}
		return os.Chtimes(target, at, at)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range slices.Backward(dirs) {
		if err := os.Chmod(d, perm|0o100); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(d, at, at); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// tarEntry is one entry of a chart archive as the tests look at it.
type tarEntry struct {
	name    string
	mode    int64
	modTime time.Time
	data    string
}

func readTgz(t *testing.T, archive []byte) (gzip.Header, []tarEntry) {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var entries []tarEntry
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, tarEntry{name: hdr.Name, mode: hdr.Mode, modTime: hdr.ModTime, data: string(data)})
	}
	return gz.Header, entries
}

func TestTaskRunHelmPacksAChartDirectory(t *testing.T) {
	t.Parallel()
	pack := func(dir string) []byte {
		h := newHarness(t).login()
		s, _, r := runHelm(t, h, "--release", "shop", "--namespace", "shop", "--chart", dir)
		if !strings.Contains(r.stderr, "Chart shop-0.1.0 packed from "+dir+" (8 files)") || !strings.Contains(r.stderr, "inline in the spec") {
			t.Errorf("stderr does not say what was packed and how it travels:\n%s", r.stderr)
		}
		return s.Chart.Archive
	}
	// The same files with other times and modes.
	first := pack(copyTree(t, testChart, time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC), 0o600))
	second := pack(copyTree(t, testChart, time.Now(), 0o644))
	header, entries := readTgz(t, first)

	t.Run("the same files pack to the same bytes whatever their times and modes", func(t *testing.T) {
		if !bytes.Equal(first, second) {
			t.Fatalf("two packings differ: %d and %d bytes", len(first), len(second))
		}
	})
	t.Run("the archive holds the chart's files sorted under its name, subchart included, .helmignore honoured", func(t *testing.T) {
		var names []string
		for _, e := range entries {
			names = append(names, e.name)
		}
		want := []string{
			"shop/.helmignore",
			"shop/Chart.yaml",
			"shop/charts/cache/Chart.yaml",
			"shop/charts/cache/templates/configmap.yaml",
			"shop/charts/cache/values.yaml",
			"shop/templates/NOTES.txt",
			"shop/templates/configmap.yaml",
			"shop/values.yaml",
		}
		if !slices.Equal(names, want) {
			t.Fatalf("entries:\n%s\nwant:\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
		}
	})
	t.Run("entries carry no times, owners or modes of the operator's machine", func(t *testing.T) {
		if !header.ModTime.IsZero() && header.ModTime.Unix() != 0 || header.Name != "" {
			t.Errorf("gzip header = %+v, want no time and no name", header)
		}
		for _, e := range entries {
			if e.modTime.Unix() != 0 || e.mode != 0o644 {
				t.Errorf("%s: mtime %v, mode %o; want the epoch and 644", e.name, e.modTime, e.mode)
			}
		}
	})
	t.Run("helm loads the archive with its subchart and values", func(t *testing.T) {
		ch, err := loader.LoadArchive(bytes.NewReader(first))
		if err != nil {
			t.Fatal(err)
		}
		if ch.Metadata.Name != "shop" || ch.Metadata.Version != "0.1.0" || len(ch.Dependencies()) != 1 || ch.Dependencies()[0].Name() != "cache" || ch.Values["greeting"] != "hello" {
			t.Fatalf("loaded %s-%s with %d dependencies and values %v", ch.Metadata.Name, ch.Metadata.Version, len(ch.Dependencies()), ch.Values)
		}
	})
}

// writeTgz writes a chart archive as another tool would: a directory
// entry, the current time, a name in the gzip header.
func writeTgz(t *testing.T, path string, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	gz.Name = filepath.Base(path)
	gz.ModTime = time.Now()
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "web/", Mode: 0o755, ModTime: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range files {
			if !yield(k) {
				return
			}
		}
	}) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "web/" + name, Mode: 0o600, Size: int64(len(files[name])), ModTime: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[name])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestTaskRunHelmSendsAChartArchiveAsItIs(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	path := filepath.Join(h.dir, "web-2.0.0.tgz")
	want := writeTgz(t, path, map[string]string{
		"Chart.yaml":                "apiVersion: v2\nname: web\nversion: 2.0.0\n",
		"templates/deployment.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n",
	})
	s, _, r := runHelm(t, h, "--release", "web", "--namespace", "shop", "--chart", path)
	if !bytes.Equal(s.Chart.Archive, want) {
		t.Errorf("the spec's archive (%d bytes) is not the file (%d bytes)", len(s.Chart.Archive), len(want))
	}
	if !strings.Contains(r.stderr, "Chart web-2.0.0 read from "+path) {
		t.Errorf("stderr does not name the chart:\n%s", r.stderr)
	}
}

// writeChart writes a chart directory with one template, plus extra files.
func writeChart(t *testing.T, extra map[string][]byte) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "big")
	files := map[string][]byte{
		"Chart.yaml":               []byte("apiVersion: v2\nname: big\nversion: 1.0.0\n"),
		"templates/configmap.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\n"),
	}
	for name, data := range extra {
		files[name] = data
	}
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// incompressible returns n bytes of text that gzip cannot shrink much.
func incompressible(n int) []byte {
	raw := make([]byte, n*3/4)
	rng := rand.NewChaCha8([32]byte{1})
	_, _ = rng.Read(raw)
	return []byte(base64.StdEncoding.EncodeToString(raw))
}

func TestTaskRunHelmUploadsLargeCharts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		size int
		args []string
	}{
		// The text compresses to about three quarters of its size.
		{"a chart archive over 256 KiB travels as an artifact", 400 << 10, nil},
		{"an archive that fits alone but not beside large values travels as an artifact", 300 << 10,
			[]string{"--set", "blob=" + strings.Repeat("v", 240<<10)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t).login()
			dir := writeChart(t, map[string][]byte{"files/blob.txt": incompressible(tt.size)})
			s, task, r := runHelm(t, h, append([]string{"--release", "big", "--namespace", "shop", "--chart", dir}, tt.args...)...)
			if len(s.Chart.Archive) != 0 || !taskspec.IsArtifactDigest(s.Chart.Artifact) {
				t.Fatalf("chart carries an archive of %d bytes and artifact %q; want only an artifact", len(s.Chart.Archive), s.Chart.Artifact)
			}
			if !slices.Equal(task.GetArtifacts(), []string{s.Chart.Artifact}) {
				t.Errorf("task artifacts = %v, want [%s]", task.GetArtifacts(), s.Chart.Artifact)
			}
			h.hub.mu.Lock()
			content := h.hub.artifacts[s.Chart.Artifact]
			h.hub.mu.Unlock()
			sum := sha256.Sum256(content)
			if "sha256:"+hex.EncodeToString(sum[:]) != s.Chart.Artifact {
				t.Fatalf("the uploaded artifact does not match its digest")
			}
			if ch, err := loader.LoadArchive(bytes.NewReader(content)); err != nil || ch.Metadata.Name != "big" || len(ch.Files) != 1 {
				t.Errorf("the uploaded artifact is not the chart: %v", err)
			}
			if !strings.Contains(r.stderr, "uploaded as "+s.Chart.Artifact) {
				t.Errorf("stderr does not say the chart was uploaded:\n%s", r.stderr)
			}
			if len(task.GetSpec()) > taskspec.MaxSpecBytes {
				t.Errorf("spec is %d bytes", len(task.GetSpec()))
			}
		})
	}
}

func TestTaskRunHelmValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		args  []string
		stdin string
		want  string
	}{
		{
			name: "values files merge left to right, nested maps key by key, documents of one file in order",
			args: []string{"-f", "testdata/helm/values/base.yaml", "--values", "testdata/helm/values/prod.yaml"},
			want: `{"image":{"repository":"registry.example.com/shop","tag":"1.4.1"},"ingress":{"host":"shop.example.com"},"replicas":3,"resources":{"limits":{"cpu":"500m","memory":"1Gi"}}}`,
		},
		{
			name: "--set wins over the files, in helm's syntax and types",
			args: []string{"-f", "testdata/helm/values/base.yaml", "--set", "replicas=5,image.tag=2.0.0", "--set", "features={a,b}", "--set", "debug=true"},
			want: `{"debug":true,"features":["a","b"],"image":{"repository":"registry.example.com/shop","tag":"2.0.0"},"replicas":5,"resources":{"limits":{"cpu":"500m","memory":"256Mi"}}}`,
		},
		{
			name: "a later --set wins over an earlier one, and null removes a chart default",
			args: []string{"--set", "greeting=hi", "--set", "greeting=hey", "--set", "cache=null"},
			want: `{"cache":null,"greeting":"hey"}`,
		},
		{
			name:  "-f - reads the values from stdin",
			args:  []string{"-f", "-", "--set", "b=2"},
			stdin: "a: 1\nb: 1\n",
			want:  `{"a":1,"b":2}`,
		},
		{
			name: "without values the spec has none",
			args: nil,
			want: ``,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t).login()
			h.stdin = tt.stdin
			s, _, _ := runHelm(t, h, append([]string{"--release", "shop", "--namespace", "shop", "--chart", testChart}, tt.args...)...)
			if string(s.Values) != tt.want {
				t.Errorf("values = %s\nwant     %s", s.Values, tt.want)
			}
		})
	}
}

func TestTaskRunHelmRefusals(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-do-not-echo"
	notChart := filepath.Dir(writeChart(t, nil)) // holds big/, no Chart.yaml of its own
	rel := []string{"--release", "shop", "--namespace", "shop"}
	chart := append(slices.Clone(rel), "--chart", testChart)
	repo := append(slices.Clone(rel), "--repo", "https://charts.example.com", "--chart-name", "shop")
	tests := []struct {
		name    string
		args    []string
		wantErr []string
	}{
		{"a password that is not a vault reference is refused without repeating it",
			append(slices.Clone(repo), "--username", "deploy", "--password", secret), []string{"--password", "vault reference", "vault://k8s/registry-creds/password"}},
		{"a malformed vault reference is refused",
			append(slices.Clone(repo), "--username", "deploy", "--password", "vault://k8s"), []string{"--password", "vault://"}},
		{"a user name without a password is refused", append(slices.Clone(repo), "--username", "deploy"), []string{"--username and --password"}},
		{"an install without a chart is refused", append(slices.Clone(rel), "--kind", "helm"), []string{"needs a chart", "--chart DIR"}},
		{"a helm task without a namespace is refused", []string{"--release", "shop", "--chart", testChart}, []string{"--namespace"}},
		{"an unknown action is refused with the valid ones", append(slices.Clone(rel), "--helm-action", "deploy"), []string{"deploy", "install, upgrade, rollback"}},
		{"chart flags on a rollback are refused", append(slices.Clone(chart), "--helm-action", "rollback"), []string{"--chart does not apply to a helm rollback", "install or upgrade"}},
		{"values on a status are refused", append(slices.Clone(rel), "--helm-action", "status", "--set", "a=1"), []string{"--set does not apply to a helm status"}},
		{"--rollback-to without a rollback is refused", append(slices.Clone(chart), "--rollback-to", "2"), []string{"--rollback-to does not apply to a helm install", "rollback"}},
		{"--keep-history on an install is refused", append(slices.Clone(chart), "--keep-history"), []string{"--keep-history", "uninstall"}},
		{"--adopt on an uninstall is refused", append(slices.Clone(rel), "--helm-action", "uninstall", "--adopt"), []string{"--adopt does not apply to a helm uninstall"}},
		{"--version with a local chart is refused", append(slices.Clone(chart), "--version", "1.0.0"), []string{"--version applies to charts from a repository"}},
		{"--plain-http with an HTTPS repository is refused", append(slices.Clone(repo), "--plain-http"), []string{"--plain-http", "oci://"}},
		{"an oci:// --repo is refused with the form that works", append(slices.Clone(rel), "--repo", "oci://r.example.com/charts", "--chart-name", "shop"), []string{"--chart oci://r.example.com/charts/NAME"}},
		{"--repo without --chart-name is refused", append(slices.Clone(rel), "--repo", "https://charts.example.com"), []string{"--chart-name"}},
		{"--chart with --repo is refused", append(slices.Clone(repo), "--chart", testChart), []string{"--chart and --repo"}},
		{"--bundle with a chart is refused", append(slices.Clone(chart), "--bundle", "testdata/bundle/extra.yaml"), []string{"--bundle", "manifests"}},
		{"--revision with a helm task points to --rollback-to", append(slices.Clone(rel), "--helm-action", "rollback", "--revision", "2"), []string{"--rollback-to"}},
		{"helm flags with another kind are refused", append(slices.Clone(chart), "--kind", "manifests"), []string{"--chart", "--kind manifests"}},
		{"helm flags with --spec-json are refused", append(slices.Clone(chart), "--spec-json", "{}"), []string{"not both"}},
		{"a helm timeout that is not whole seconds is refused", append(slices.Clone(chart), "--helm-timeout", "1500ms"), []string{"--helm-timeout", "whole seconds"}},
		{"a helm timeout over an hour is refused", append(slices.Clone(chart), "--helm-timeout", "2h"), []string{"--helm-timeout", "1h"}},
		{"an invalid release name is refused before anything is sent", []string{"--release", "Shop_1", "--namespace", "shop", "--chart", testChart}, []string{"release", "DNS-1123"}},
		{"a values file with an alias bomb is refused", append(slices.Clone(chart), "-f", "testdata/helm/values/bomb.yaml"), []string{"--values", "bomb.yaml", "alias"}},
		{"a missing values file is named", append(slices.Clone(chart), "-f", "testdata/helm/values/missing.yaml"), []string{"missing.yaml"}},
		{"a malformed --set is refused", append(slices.Clone(chart), "--set", "noequals"), []string{"--set noequals"}},
		{"values over 256 KiB are refused", append(slices.Clone(chart), "--set", "blob="+strings.Repeat("x", 300<<10)), []string{"256 KiB"}},
		{"a missing chart is named with the other ways to give one", append(slices.Clone(rel), "--chart", "testdata/helm/charts/nope"), []string{"nope", "--repo URL --chart-name NAME"}},
		{"a directory that is not a chart is refused", append(slices.Clone(rel), "--chart", notChart), []string{notChart, "Chart.yaml"}},
		{"a file that is not a chart archive is refused", append(slices.Clone(rel), "--chart", "testdata/helm/values/base.yaml"), []string{"not a chart archive"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t).login()
			r := h.run(append([]string{"task", "run", "--env", "prod", "--id", "t-refused"}, tt.args...)...)
			assertErrorContains(t, r.err, tt.wantErr...)
			if strings.Contains(r.err.Error()+r.stderr+r.stdout, secret) {
				t.Errorf("the password was repeated: %v", r.err)
			}
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

// The spec the CLI builds must be one the agent decodes as is, without
// fields it does not know, and --kind helm with a spec of its own stays
// the operator's business.
func TestTaskRunHelmSpecIsStrictJSON(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	_, task, _ := runHelm(t, h, "--release", "shop", "--namespace", "shop", "--chart", testChart, "--set", "a=1")
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(task.GetSpec(), &fields); err != nil {
		t.Fatal(err)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range fields {
			if !yield(k) {
				return
			}
		}
	})
	if want := []string{"action", "chart", "namespace", "release", "values"}; !slices.Equal(keys, want) {
		t.Errorf("spec fields = %v, want %v", keys, want)
	}
	h.mustRun("task", "run", "--env", "prod", "--kind", "helm", "--id", "t-raw", "--spec-json", `{"release":"x"}`)
	if raw, _ := h.hub.snapshot("t-raw"); string(raw.GetSpec()) != `{"release":"x"}` {
		t.Errorf("--spec-json was not sent as given: %s", raw.GetSpec())
	}
}

// addHelmTask seeds the fake hub with a finished helm task.
func addHelmTask(t *testing.T, h *harness, id string, spec taskspec.Helm, result string) {
	t.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	h.hub.mu.Lock()
	defer h.hub.mu.Unlock()
	h.hub.tasks = append(h.hub.tasks, &v1.Task{
		Id: id, Tenant: fakeTenant, Environment: "prod", Kind: taskspec.KindHelm, State: v1.TaskState_TASK_STATE_SUCCEEDED,
		Spec: raw, Result: []byte(result), Attempt: 1, MaxAttempts: 3, AgentId: "ag-1", ConflictKeys: []string{spec.ConflictKey()},
		CreatedAt: ts(-10 * time.Minute), UpdatedAt: ts(-9 * time.Minute), FinishedAt: ts(-9 * time.Minute),
	})
}

func TestTaskGetShowsAHelmRelease(t *testing.T) {
	t.Parallel()
	install := taskspec.Helm{Action: "install", Release: "shop", Namespace: "shop", Wait: true,
		Chart: &taskspec.HelmChart{Archive: bytes.Repeat([]byte{0x1f}, 2048)}, Values: json.RawMessage(`{"greeting":"hi"}`)}
	installResult := `{"release":"shop","namespace":"shop","action":"install","revision":2,"status":"deployed","chart":"shop-1.2.0","app_version":"2.0",
		"source":"inline","description":"Upgrade complete","notes":"shop 1.2.0 is deployed in shop.\n\tSee the docs.\n","dry_run_objects":4,
		"objects":[{"version":"v1","kind":"ConfigMap","namespace":"shop","name":"shop-config","outcome":"configured"},
		{"group":"apps","version":"v1","kind":"Deployment","namespace":"shop","name":"shop-web","outcome":"configured"},
		{"group":"shop.example.com","version":"v1","kind":"Widget","namespace":"shop","name":"shop-widget","outcome":"created"}],
		"objects_omitted":2}`
	history := taskspec.Helm{Action: "history", Release: "shop", Namespace: "shop"}
	historyResult := `{"release":"shop","namespace":"shop","action":"history","revision":3,"status":"deployed","chart":"shop-1.2.0","objects":[],
		"history":[
		{"revision":3,"status":"deployed","chart":"shop-1.2.0","app_version":"2.0","updated":"2026-03-01T11:58:00Z","description":"Rollback to 1 by task t-rb"},
		{"revision":2,"status":"superseded","chart":"shop-1.2.0","app_version":"2.0","updated":"2026-03-01T11:30:00Z","description":"Upgrade complete"},
		{"revision":1,"status":"superseded","chart":"shop-1.2.0","app_version":"2.0","updated":"2026-03-01T09:00:00Z","description":"Install complete"}]}`
	tests := []struct {
		name, id, golden string
		spec             taskspec.Helm
		result           string
	}{
		{"an install shows revision, status, chart, objects and notes, not the archive", "t-install", "helm/task_get_install", install, installResult},
		{"a history shows the revisions as helm does", "t-history", "helm/task_get_history", history, historyResult},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t).login()
			addHelmTask(t, h, tt.id, tt.spec, tt.result)
			r := h.mustRun("task", "get", tt.id)
			golden(t, tt.golden, h.normalize("$ outpost task get "+tt.id+"\n"+r.stdout+"--- stderr ---\n"+r.stderr))
			if strings.Contains(r.stdout, base64.StdEncoding.EncodeToString(install.Chart.Archive[:30])) {
				t.Error("the chart archive is shown")
			}
		})
	}
	t.Run("-o json still shows the whole task", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t).login()
		addHelmTask(t, h, "t-install", install, installResult)
		r := h.mustRun("task", "get", "t-install", "-o", "json")
		if !strings.Contains(r.stdout, `"result"`) || !strings.Contains(r.stdout, `"spec"`) {
			t.Errorf("json output lacks the spec or result:\n%s", r.stdout)
		}
	})
	t.Run("a helm task whose spec is not a helm spec is shown as it is", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t).login()
		r := h.mustRun("task", "get", "t-3") // seeded with {"chart":"web"}
		if !strings.Contains(r.stdout, `"chart": "web"`) {
			t.Errorf("the spec is not shown as stored:\n%s", r.stdout)
		}
	})
}

func TestTaskRunHelmWaitShowsTheRelease(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	// Running again with the id of a finished task waits for that one.
	addHelmTask(t, h, "t-helm", taskspec.Helm{Action: "install", Release: "shop", Namespace: "shop", Chart: &taskspec.HelmChart{Archive: []byte{1}}},
		`{"release":"shop","namespace":"shop","action":"install","revision":1,"status":"deployed","chart":"shop-0.1.0","objects":[]}`)
	r := h.mustRun("task", "run", "--env", "prod", "--id", "t-helm", "--release", "shop", "--namespace", "shop", "--chart", testChart, "--wait")
	for _, want := range []string{`RESULT:\n`, `\n  REVISION: +1\n`, `\n  STATUS: +deployed\n`, `\n  CHART: +shop-0.1.0\n`} {
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
}
