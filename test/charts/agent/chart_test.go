package agent_test

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	kubefake "helm.sh/helm/v4/pkg/kube/fake"
	release "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage"
	"helm.sh/helm/v4/pkg/storage/driver"
	"sigs.k8s.io/yaml"
)

// chartDir is deploy/charts/outpost-agent, found from this file so that
// the tests run from any directory.
func chartDir(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test's source file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "deploy", "charts", "outpost-agent")
}

func loadChart(t testing.TB) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return ch
}

// baseValues are what `outpost token create` prints: hub, environment,
// token and the namespaces to deploy into.
func baseValues() map[string]any {
	return map[string]any{
		"hub":            map[string]any{"url": "https://hub.example.com"},
		"environment":    "acme/prod",
		"bootstrapToken": map[string]any{"value": "obt_example-bootstrap-token"},
		"rbac":           map[string]any{"targetNamespaces": []any{"shop", "web"}},
	}
}

// with returns vals with each "a.b.c=value" path set.
func with(vals map[string]any, sets map[string]any) map[string]any {
	for path, v := range sets {
		m := vals
		keys := strings.Split(path, ".")
		for _, k := range keys[:len(keys)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[k] = next
			}
			m = next
		}
		m[keys[len(keys)-1]] = v
	}
	return vals
}

// render renders the chart as `helm template` does, in namespace
// outpost-system as release outpost-agent.
func render(t testing.TB, vals map[string]any) (*release.Release, error) {
	t.Helper()
	cfg := &action.Configuration{
		Releases:     storage.Init(driver.NewMemory()),
		KubeClient:   &kubefake.PrintingKubeClient{Out: io.Discard},
		Capabilities: common.DefaultCapabilities,
	}
	cfg.SetLogger(slog.DiscardHandler)
	in := action.NewInstall(cfg)
	in.DryRunStrategy = action.DryRunClient
	in.Replace = true
	in.ReleaseName = "outpost-agent"
	in.Namespace = "outpost-system"
	in.KubeVersion = kubeVersion(t)
	out, err := in.Run(loadChart(t), vals)
	if err != nil {
		return nil, err
	}
	rel, ok := out.(*release.Release)
	if !ok {
		return nil, fmt.Errorf("unexpected release type %T", out)
	}
	return rel, nil
}

// kubeVersion is the cluster version the chart is rendered for; fixed, so
// that the golden files do not follow Helm's defaults.
func kubeVersion(t testing.TB) *common.KubeVersion {
	t.Helper()
	kv, err := common.ParseKubeVersion("v1.36.0")
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// mustRender is render for values that must render.
func mustRender(t testing.TB, vals map[string]any) *release.Release {
	t.Helper()
	rel, err := render(t, vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return rel
}

// object is one rendered manifest.
type object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	raw []byte
}

// objects splits a release's manifest into its objects.
func objects(t testing.TB, rel *release.Release) []object {
	t.Helper()
	var out []object
	for _, doc := range strings.Split(rel.Manifest, "\n---") {
		if strings.TrimSpace(strings.TrimPrefix(doc, "---")) == "" {
			continue
		}
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("rendered manifest does not parse: %v\n%s", err, doc)
		}
		if o.Kind == "" {
			continue
		}
		o.raw = []byte(doc)
		out = append(out, o)
	}
	return out
}

// find returns the one object of kind, decoded into into.
func find(t testing.TB, rel *release.Release, kind string, into any) {
	t.Helper()
	var found []object
	for _, o := range objects(t, rel) {
		if o.Kind == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("rendered %d objects of kind %s, want 1", len(found), kind)
	}
	if err := yaml.Unmarshal(found[0].raw, into); err != nil {
		t.Fatalf("decode %s: %v", kind, err)
	}
}
