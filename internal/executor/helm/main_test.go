package helm_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/helm"
	"github.com/outposthq/outpost/internal/kube/kubetest"
	"github.com/outposthq/outpost/internal/taskspec"
	"github.com/outposthq/outpost/internal/vault"
)

var env *kubetest.Env

func TestMain(m *testing.M) { kubetest.Main(m, &env) }

var seq atomic.Int64

// setup is an agent identity and the namespace it deploys into.
type setup struct {
	cfg    *rest.Config
	target string
}

// admin acts as cluster administrator, for charts with CRDs.
func admin(t *testing.T) setup {
	t.Helper()
	return setup{cfg: rest.CopyConfig(env.Config), target: env.Namespace(t, "app")}
}

// leastPrivilege is an agent bound only by namespace Roles.
func leastPrivilege(t *testing.T) setup {
	t.Helper()
	agentNS := env.Namespace(t, "agent")
	target := env.Namespace(t, "app")
	cfg := env.AgentConfig(t, kubetest.Agent{Name: fmt.Sprintf("helm-agent-%d", seq.Add(1)), Namespace: agentNS, Targets: []string{target}})
	return setup{cfg: cfg, target: target}
}

func (s setup) executor(t *testing.T, mutate ...func(*helm.Options)) *helm.Executor {
	t.Helper()
	resolver, err := vault.NewResolver(vault.ResolverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	opts := helm.Options{Config: rest.CopyConfig(s.cfg), Vault: resolver}
	for _, m := range mutate {
		m(&opts)
	}
	ex, err := helm.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

// secrets collects what tasks register with their redactor.
type secrets struct{ values []string }

func (s *secrets) AddSecret(v string) {
	if v != "" {
		s.values = append(s.values, v)
	}
}

// run executes spec as task id and decodes the result.
func run(t *testing.T, ex *helm.Executor, id string, spec taskspec.Helm) (helm.Result, error) {
	t.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	out, err := ex.Execute(t.Context(), executor.Task{ID: id, Kind: taskspec.KindHelm, Spec: raw, Attempt: 1, Redact: &secrets{}})
	if err != nil {
		return helm.Result{}, err
	}
	var res helm.Result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("decode result %s: %v", out, err)
	}
	return res, nil
}

func mustRun(t *testing.T, ex *helm.Executor, id string, spec taskspec.Helm) helm.Result {
	t.Helper()
	res, err := run(t, ex, id, spec)
	if err != nil {
		t.Fatalf("task %s: %v", id, err)
	}
	return res
}

// wantPhase checks that err failed in phase, is terminal or not as
// wanted, wraps target when given and mentions text.
func wantPhase(t *testing.T, err error, phase string, terminal bool, target error, text string) {
	t.Helper()
	if err == nil {
		t.Fatalf("task succeeded, want a failure in phase %s", phase)
	}
	if got := helm.PhaseOf(err); got != phase {
		t.Errorf("phase %q, want %q (error: %v)", got, phase, err)
	}
	if executor.IsTerminal(err) != terminal {
		t.Errorf("terminal %v, want %v (error: %v)", executor.IsTerminal(err), terminal, err)
	}
	if target != nil && !errors.Is(err, target) {
		t.Errorf("error %v, want one wrapping %v", err, target)
	}
	if !strings.Contains(err.Error(), text) {
		t.Errorf("error %q, want it to mention %q", err, text)
	}
}

func values(t *testing.T, v map[string]any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// packChart packs the chart directory testdata/charts/<name> as helm
// package would: every file under <name>/, and each directory under
// charts/ as a nested archive. edits replace (or, with "", remove) files by
// path relative to the chart.
func packChart(t *testing.T, name string, edits map[string]string) []byte {
	t.Helper()
	files := readTree(t, filepath.Join("testdata", "charts", name))
	for path, content := range edits {
		if content == "" {
			delete(files, path)
		} else {
			files[path] = []byte(content)
		}
	}
	subcharts := map[string]map[string][]byte{}
	for path, data := range files {
		rest, ok := strings.CutPrefix(path, "charts/")
		if !ok {
			continue
		}
		sub, inner, ok := strings.Cut(rest, "/")
		if !ok {
			continue
		}
		if subcharts[sub] == nil {
			subcharts[sub] = map[string][]byte{}
		}
		subcharts[sub][inner] = data
		delete(files, path)
	}
	for sub, subFiles := range subcharts {
		files["charts/"+sub+".tgz"] = tgz(t, prefixed(sub, subFiles))
	}
	return tgz(t, prefixed(name, files))
}

func readTree(t *testing.T, root string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		files[filepath.ToSlash(rel)] = data
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func prefixed(dir string, files map[string][]byte) []entry {
	var out []entry
	for name, data := range files {
		out = append(out, entry{name: dir + "/" + name, data: data})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// entry is one tar entry of a crafted archive.
type entry struct {
	name     string
	data     []byte
	typeflag byte
	linkname string
}

func tgz(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		typ := e.typeflag
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Linkname: e.linkname, Mode: 0o644, Size: int64(len(e.data))}
		if typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// shop is an install spec of the shop chart.
func shop(ns, release string, archive []byte, vals map[string]any) taskspec.Helm {
	spec := taskspec.Helm{Release: release, Namespace: ns, Chart: &taskspec.HelmChart{Archive: archive}}
	if vals != nil {
		b, _ := json.Marshal(vals)
		spec.Values = b
	}
	return spec
}

var getOpts = metav1.GetOptions{}

// dyn is a dynamic client acting as cluster administrator.
func dyn(t *testing.T) dynamic.Interface {
	t.Helper()
	c, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func shopHistory(ns, release string) taskspec.Helm {
	return taskspec.Helm{Action: taskspec.HelmHistory, Release: release, Namespace: ns}
}
