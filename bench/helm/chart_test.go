package main

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"sigs.k8s.io/yaml"
)

// TestChartRendersTwentyObjectsOfTheAdvertisedKinds loads the packed chart
// as Helm does and renders it: what both sides install is what the report
// says it is.
func TestChartRendersTwentyObjectsOfTheAdvertisedKinds(t *testing.T) {
	c, err := newChart()
	if err != nil {
		t.Fatal(err)
	}
	ch, err := loader.LoadArchive(bytes.NewReader(c.archive))
	if err != nil {
		t.Fatalf("Helm cannot load the packed chart: %v", err)
	}
	if ch.Name() != chartName {
		t.Errorf("chart name %q, want %q", ch.Name(), chartName)
	}
	vals, err := util.ToRenderValues(ch, nil, common.ReleaseOptions{Name: "app-000", Namespace: "bench-x-00", IsInstall: true}, common.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	out, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	kinds := map[string]int{}
	objects := 0
	for _, name := range slices.Sorted(maps.Keys(out)) {
		if !strings.HasSuffix(name, ".yaml") || strings.TrimSpace(out[name]) == "" {
			continue
		}
		var obj struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(out[name]), &obj); err != nil {
			t.Fatalf("%s does not render to YAML: %v\n%s", name, err, out[name])
		}
		if obj.Kind == "" || obj.Metadata.Name == "" {
			t.Errorf("%s renders an object without kind or name", name)
		}
		kinds[obj.Kind]++
		objects++
	}
	want := map[string]int{"ConfigMap": 8, "Secret": 4, "Service": 3, "Deployment": 3, "ServiceAccount": 1, "Role": 1}
	if objects != 20 || c.templates != 20 || !maps.Equal(kinds, want) {
		t.Errorf("%d templates render %d objects %v, want 20 templates and 20 objects %v", c.templates, objects, kinds, want)
	}
	if len(c.archive) > 256<<10 {
		t.Errorf("packed chart is %d bytes, over the inline limit", len(c.archive))
	}
}
