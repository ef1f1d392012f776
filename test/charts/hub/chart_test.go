package hub

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	release "helm.sh/helm/v4/pkg/release/v1"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/outposthq/outpost/internal/kube/kubetest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const (
	releaseName = "outpost-hub"
	namespace   = "outpost"
	// kubeVersion is the cluster version offline renders assume: the test
	// cluster's (hack/testbins.versions).
	kubeVersion = "v1.36.4"
)

// chartDir is the chart under test, relative to this package.
var chartDir = filepath.Join("..", "..", "..", "deploy", "charts", "outpost-hub")

var (
	clusterOnce sync.Once
	clusterEnv  *kubetest.Env
	clusterErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if clusterEnv != nil {
		if err := clusterEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

// cluster starts one real kube-apiserver and etcd for the whole package,
// on first use, so that the rendering tests never wait for it. Where the
// binaries are not built the test is skipped loudly, except under CI=true,
// where that fails.
func cluster(t *testing.T) *kubetest.Env {
	t.Helper()
	clusterOnce.Do(func() { clusterEnv, clusterErr = kubetest.Start() })
	if errors.Is(clusterErr, kubetest.ErrNoAssets) && os.Getenv("CI") != "true" {
		fmt.Fprintf(os.Stderr, "\n!!! SKIPPING %s: %v\n\n", t.Name(), clusterErr)
		t.Skip(clusterErr)
	}
	if clusterErr != nil {
		t.Fatal(clusterErr)
	}
	return clusterEnv
}

// loadChart loads the chart from its directory.
func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.LoadDir(chartDir)
	if err != nil {
		t.Fatalf("load %s: %v", chartDir, err)
	}
	return ch
}

// parseValues parses YAML values as a user passes them with -f.
func parseValues(t *testing.T, doc string) map[string]any {
	t.Helper()
	vals := map[string]any{}
	if err := yaml.Unmarshal([]byte(doc), &vals); err != nil {
		t.Fatalf("values: %v", err)
	}
	return vals
}

// render renders the chart with vals as `helm template` does: client
// only, with the values schema checked.
func render(ctx context.Context, ch *chart.Chart, vals map[string]any) (*release.Release, error) {
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	in := action.NewInstall(cfg)
	in.ReleaseName, in.Namespace = releaseName, namespace
	in.DryRunStrategy = action.DryRunClient
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		return nil, err
	}
	in.KubeVersion = kv
	rel, err := in.RunWithContext(ctx, ch, vals)
	if err != nil {
		return nil, err
	}
	r, ok := rel.(*release.Release)
	if !ok {
		return nil, fmt.Errorf("unexpected release type %T", rel)
	}
	return r, nil
}

// object is one rendered manifest.
type object struct {
	Kind string
	Name string
	// YAML is the document as rendered.
	YAML []byte
}

// objects splits a rendered manifest into its documents.
func objects(t *testing.T, manifest string) []object {
	t.Helper()
	var out []object
	for doc := range strings.SplitSeq(manifest, "\n---\n") {
		doc = strings.TrimPrefix(strings.TrimSpace(doc), "---")
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("rendered document does not parse: %v\n%s", err, doc)
		}
		if head.Kind == "" {
			continue
		}
		out = append(out, object{Kind: head.Kind, Name: head.Metadata.Name, YAML: []byte(doc)})
	}
	return out
}

// kinds returns the sorted kinds of objs, one entry per object.
func kinds(objs []object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.Kind)
	}
	sort.Strings(out)
	return out
}

// deployment returns the one Deployment in objs.
func deployment(t *testing.T, objs []object) *appsv1.Deployment {
	t.Helper()
	var found *appsv1.Deployment
	for _, o := range objs {
		if o.Kind != "Deployment" {
			continue
		}
		if found != nil {
			t.Fatal("more than one Deployment rendered")
		}
		found = &appsv1.Deployment{}
		if err := yaml.UnmarshalStrict(o.YAML, found); err != nil {
			t.Fatalf("Deployment: %v", err)
		}
	}
	if found == nil {
		t.Fatal("no Deployment rendered")
	}
	return found
}

// golden compares got with testdata/name.golden, or rewrites it under
// -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path) //nolint:gosec // a golden file of this package
	if err != nil {
		t.Fatalf("%v (run go test ./test/charts/hub -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("rendered chart differs from %s (run with -update if the change is intended):\n%s", path, diff(string(want), string(got)))
	}
}

// diff returns the lines of want and got that differ, the first few only.
func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 20; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %q\n  got  %q\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}
