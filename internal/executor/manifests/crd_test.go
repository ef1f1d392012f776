package manifests_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/outposthq/outpost/internal/executor/manifests"
	"github.com/outposthq/outpost/internal/taskspec"
)

// bigCRD returns a namespaced CRD of kind Widget larger than 256 KiB, the
// most client-side apply's last-applied annotation can hold.
func bigCRD(t *testing.T) string {
	t.Helper()
	crd := map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": "widgets.example.outpost.dev"},
		"spec": map[string]any{
			"group": "example.outpost.dev",
			"scope": "Namespaced",
			"names": map[string]any{"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
			"versions": []any{map[string]any{
				"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type":        "object",
					"description": strings.Repeat("A widget of the example application. ", 8000),
					"properties": map[string]any{
						"spec": map[string]any{"type": "object", "properties": map[string]any{
							"size": map[string]any{"type": "integer", "minimum": 1},
						}},
					},
				}},
			}},
		},
	}
	raw, err := json.Marshal(crd)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) <= 256<<10 {
		t.Fatalf("CRD of %d bytes, want more than 256 KiB", len(raw))
	}
	return string(raw) + "\n"
}

func widget(name string, size int) string {
	return fmt.Sprintf("apiVersion: example.outpost.dev/v1\nkind: Widget\nmetadata: {name: %s}\nspec: {size: %d}\n", name, size)
}

func TestCRDAndItsResourcesInOneBundle(t *testing.T) {
	s := admin(t)
	ex := s.executor(t)
	crd := bigCRD(t)
	widgets := schema.GroupVersionResource{Group: "example.outpost.dev", Version: "v1", Resource: "widgets"}
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a CR the new CRD's schema rejects fails after the CRD, before any other object", func(t *testing.T) {
		bad := taskspec.Manifests{Release: "widgets", Namespace: s.target, Bundle: join(configMap("cfg", "", nil), crd, widget("w0", 0))}
		_, err := ex.Execute(t.Context(), task(t, "w-bad", 1, bad))
		wantTerminal(t, err, manifests.ErrDryRun, "Widget "+s.target+"/w0 (document 3)", "spec.size")
		if configMapExists(t, s.target, "cfg") {
			t.Fatal("an object other than the CRD was written before the deferred dry-run")
		}
	})
	t.Run("the CRD is applied and Established before its resources", func(t *testing.T) {
		spec := taskspec.Manifests{Release: "widgets", Namespace: s.target, Bundle: join(configMap("cfg", "", nil), crd, widget("w1", 1), widget("w2", 2), widget("w3", 3))}
		res := execute(t, ex, task(t, "w1", 1, spec))
		// The CRD exists already from the failed task above, which left
		// it labelled and pending; this task takes it over unchanged.
		wantOutcomes(t, res, map[string]string{
			"ConfigMap/cfg": "created", "CustomResourceDefinition/widgets.example.outpost.dev": "unchanged",
			"Widget/w1": "created", "Widget/w2": "created", "Widget/w3": "created",
		})
		w, err := dyn.Resource(widgets).Namespace(s.target).Get(t.Context(), "w2", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if w.GetLabels()["outpost.dev/release"] != "widgets" {
			t.Fatalf("labels %v", w.GetLabels())
		}
	})
	t.Run("a revision without the resources prunes them and keeps the CRD", func(t *testing.T) {
		spec := taskspec.Manifests{Release: "widgets", Namespace: s.target, Bundle: join(crd, widget("w1", 5))}
		res := execute(t, ex, task(t, "w2", 1, spec))
		wantOutcomes(t, res, map[string]string{
			"ConfigMap/cfg": "pruned", "CustomResourceDefinition/widgets.example.outpost.dev": "configured",
			"Widget/w1": "configured", "Widget/w2": "pruned", "Widget/w3": "pruned",
		})
		list, err := dyn.Resource(widgets).Namespace(s.target).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 1 {
			t.Fatalf("%d widgets left, want 1", len(list.Items))
		}
	})
	t.Run("a fresh CRD with its resources in one bundle is dry-run after it is Established", func(t *testing.T) {
		fresh := strings.NewReplacer("widgets.example.outpost.dev", "gadgets.example.outpost.dev", `"Widget"`, `"Gadget"`, `"widgets"`, `"gadgets"`, `"widget"`, `"gadget"`, `"WidgetList"`, `"GadgetList"`).Replace(crd)
		gadget := strings.ReplaceAll(widget("g1", 1), "Widget", "Gadget")
		res := execute(t, ex, task(t, "g1", 1, taskspec.Manifests{Release: "gadgets", Namespace: s.target, Bundle: join(fresh, gadget)}))
		wantOutcomes(t, res, map[string]string{"CustomResourceDefinition/gadgets.example.outpost.dev": "created", "Gadget/g1": "created"})
		if res.DryRun.Deferred != 1 || res.DryRun.Objects != 2 {
			t.Fatalf("dry run %+v, want the Gadget deferred", res.DryRun)
		}
	})
}
