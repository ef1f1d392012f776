package reconcile

import (
	"encoding/json"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// applied is a Deployment as a dry run by "outpost" returns it: a field
// set by another manager (the sidecar, the annotation) and one defaulted
// by the server (revisionHistoryLimit) are not in outpost's entry.
const applied = `{
  "apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {
    "name": "web", "namespace": "app",
    "labels": {"outpost.dev/release": "web", "outpost.dev/revision": "1"},
    "annotations": {"injected": "true"},
    "managedFields": [
      {"manager": "outpost", "operation": "Apply", "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": {
        "f:metadata": {"f:labels": {"f:outpost.dev/release": {}, "f:outpost.dev/revision": {}}},
        "f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {"f:spec": {
          "f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}, "f:args": {}, "f:resources": {}}},
          "f:tolerations": {}
        }}}
      }},
      {"manager": "injector", "operation": "Apply", "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": {
        "f:metadata": {"f:annotations": {"f:injected": {}}}
      }}
    ]
  },
  "spec": {
    "replicas": 2, "revisionHistoryLimit": 10,
    "selector": {"matchLabels": {"app": "web"}},
    "template": {"spec": {
      "containers": [
        {"name": "app", "image": "nginx:1.27", "args": ["-v"], "resources": {}},
        {"name": "sidecar", "image": "envoy:1"}
      ],
      "tolerations": [{"key": "a"}]
    }}
  }
}`

func object(t *testing.T, doc string, edits ...func(map[string]any)) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	for _, e := range edits {
		e(u.Object)
	}
	return u
}

func containers(o map[string]any) []any {
	return o["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)
}

func TestBaselineDiff(t *testing.T) {
	const image = "/spec/template/spec/containers/[name=app]/image"
	tests := []struct {
		name   string
		ignore []IgnoreRule
		edit   func(map[string]any)
		want   []string
	}{
		{name: "an unchanged object has no drift", edit: func(map[string]any) {}},
		{name: "a changed image is drift", edit: func(o map[string]any) { containers(o)[0].(map[string]any)["image"] = "evil" }, want: []string{image}},
		{name: "a removed label is drift, named with an escaped key", edit: func(o map[string]any) {
			delete(o["metadata"].(map[string]any)["labels"].(map[string]any), "outpost.dev/revision")
		}, want: []string{"/metadata/labels/outpost.dev~1revision"}},
		{name: "a removed container is drift on each of its owned fields", edit: func(o map[string]any) {
			spec := o["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
			spec["containers"] = containers(o)[1:]
		}, want: []string{"/spec/template/spec/containers/[name=app]/args", image, "/spec/template/spec/containers/[name=app]/name", "/spec/template/spec/containers/[name=app]/resources"}},
		{name: "a changed field of another manager is not drift", edit: func(o map[string]any) {
			containers(o)[1].(map[string]any)["image"] = "envoy:2"
			o["metadata"].(map[string]any)["annotations"].(map[string]any)["injected"] = "false"
		}},
		{name: "a changed server default is not drift", edit: func(o map[string]any) { o["spec"].(map[string]any)["revisionHistoryLimit"] = int64(3) }},
		{name: "an owned empty map filled by others is not drift", edit: func(o map[string]any) {
			containers(o)[0].(map[string]any)["resources"] = map[string]any{"limits": map[string]any{"cpu": "1"}}
		}},
		{name: "a changed atomic list is drift", edit: func(o map[string]any) { containers(o)[0].(map[string]any)["args"] = []any{"-q"} }, want: []string{"/spec/template/spec/containers/[name=app]/args"}},
		{name: "a changed atomic struct is drift", edit: func(o map[string]any) {
			o["spec"].(map[string]any)["selector"] = map[string]any{"matchLabels": map[string]any{"app": "other"}}
		}, want: []string{"/spec/selector"}},
		{name: "an ignored field is not drift", ignore: []IgnoreRule{{Group: "apps", Kind: "Deployment", Paths: []string{"/spec/replicas"}}},
			edit: func(o map[string]any) { o["spec"].(map[string]any)["replicas"] = int64(5) }},
		{name: "a wildcard ignore rule covers every container", ignore: []IgnoreRule{{Paths: []string{"/spec/template/spec/containers/*/image"}}},
			edit: func(o map[string]any) { containers(o)[0].(map[string]any)["image"] = "evil" }},
		{name: "an ignore rule of another kind does not apply", ignore: []IgnoreRule{{Kind: "StatefulSet", Paths: []string{"/spec/replicas"}}},
			edit: func(o map[string]any) { o["spec"].(map[string]any)["replicas"] = int64(5) }, want: []string{"/spec/replicas"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := newBaseline(object(t, applied), "outpost", tt.ignore)
			if err != nil {
				t.Fatal(err)
			}
			got := b.diff(object(t, applied, tt.edit))
			if !slices.Equal(got, tt.want) {
				t.Errorf("drift %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBaselineNeedsTheManagersEntry(t *testing.T) {
	if _, err := newBaseline(object(t, applied), "helm", nil); err == nil {
		t.Fatal("a baseline was built for a manager without an apply entry")
	}
}

func TestCarryKeepsLiveValuesOfIgnoredFields(t *testing.T) {
	rules := []IgnoreRule{{Paths: []string{"/spec/replicas", "/spec/template/spec/containers/[name=app]/image"}}}
	b, err := newBaseline(object(t, applied), "outpost", rules)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.ignored) != 2 {
		t.Fatalf("%d ignored fields, want 2", len(b.ignored))
	}
	desired := object(t, applied)
	live := object(t, applied, func(o map[string]any) {
		o["spec"].(map[string]any)["replicas"] = int64(7)
		containers(o)[0].(map[string]any)["image"] = "nginx:canary"
	})
	for _, p := range b.ignored {
		if !carry(desired.Object, live.Object, p) {
			t.Errorf("%s not carried", p)
		}
	}
	if got := desired.Object["spec"].(map[string]any)["replicas"]; got != int64(7) {
		t.Errorf("replicas %v, want the live 7", got)
	}
	if got := containers(desired.Object)[0].(map[string]any)["image"]; got != "nginx:canary" {
		t.Errorf("image %v, want the live nginx:canary", got)
	}

	// A field the live object lacks is left out of the apply.
	gone := object(t, applied, func(o map[string]any) { delete(o["spec"].(map[string]any), "replicas") })
	desired = object(t, applied)
	carry(desired.Object, gone.Object, b.ignored[slices.IndexFunc(b.ignored, func(p fieldpath.Path) bool { return p.String() == ".spec.replicas" })])
	if _, ok := desired.Object["spec"].(map[string]any)["replicas"]; ok {
		t.Error("replicas kept though the live object has none")
	}
}

func TestIgnoreRuleMatching(t *testing.T) {
	tests := []struct {
		name        string
		rule        IgnoreRule
		group, kind string
		want        bool
	}{
		{name: "an empty rule matches every kind", rule: IgnoreRule{}, group: "apps", kind: "Deployment", want: true},
		{name: "a kind without a group matches it in any group", rule: IgnoreRule{Kind: "Deployment"}, group: "apps", kind: "Deployment", want: true},
		{name: "a group and kind match only together", rule: IgnoreRule{Group: "apps", Kind: "Deployment"}, group: "extensions", kind: "Deployment", want: false},
		{name: "a wildcard kind matches any kind of the group", rule: IgnoreRule{Group: "apps", Kind: "*"}, group: "apps", kind: "StatefulSet", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rule.matches(tt.group, tt.kind); got != tt.want {
				t.Errorf("matches(%q, %q) = %v, want %v", tt.group, tt.kind, got, tt.want)
			}
		})
	}
}

// FuzzIgnorePaths feeds ignore rules as the hub passes them on from users:
// any pointer must leave a baseline that compares without panicking, and
// an ignored field is never reported.
func FuzzIgnorePaths(f *testing.F) {
	for _, p := range []string{"/spec/replicas", "/spec/template/spec/containers/*/image", "/metadata/labels/outpost.dev~1revision", "/", "//", "/*", "/~"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		b, err := newBaseline(object(t, applied), "outpost", []IgnoreRule{{Paths: []string{p}}})
		if err != nil {
			t.Fatal(err)
		}
		live := object(t, applied, func(o map[string]any) { o["spec"].(map[string]any)["replicas"] = int64(9) })
		rules := [][]string{splitPointer(p)}
		for _, field := range b.diff(live) {
			if ignored(splitPointer(field), rules) {
				t.Errorf("ignored field %s reported", field)
			}
		}
		for _, ig := range b.ignored {
			carry(object(t, applied).Object, live.Object, ig)
		}
	})
}
