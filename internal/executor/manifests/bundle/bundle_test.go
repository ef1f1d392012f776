package bundle

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		want  []string
		items []int
	}{
		{
			name: "multi-document YAML with comments and empty documents",
			in: "# leading comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: app\n---\n---\n# only a comment\n---\n" +
				"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n",
			want: []string{"ConfigMap app/a (document 2)", "Deployment web (document 5)"},
		},
		{
			name: "a JSON stream of objects",
			in:   `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}} {"apiVersion":"v1","kind":"Secret","metadata":{"name":"b"}}`,
			want: []string{"ConfigMap a (document 1)", "Secret b (document 2)"},
		},
		{
			name: "YAML documents written as JSON",
			in:   "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\"}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: b}\n",
			want: []string{"ConfigMap a (document 1)", "Secret b (document 2)"},
		},
		{
			name: "a JSON array of objects",
			in:   `[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}},{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}]`,
			want: []string{"ConfigMap a (document 1 item 1)", "ConfigMap b (document 1 item 2)"},
		},
		{
			name: "a List is flattened",
			in:   "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n- apiVersion: v1\n  kind: ServiceAccount\n  metadata: {name: a}\n",
			want: []string{"ConfigMap a (document 1 item 1)", "ServiceAccount a (document 1 item 2)"},
		},
		{
			name: "the same name in two namespaces or two kinds is no duplicate",
			in:   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: x1}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: y1}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: x1}\n",
			want: []string{"ConfigMap x1/a (document 1)", "ConfigMap y1/a (document 2)", "Secret x1/a (document 3)"},
		},
		{
			name: "an empty bundle holds no objects",
			in:   "\n---\n# nothing\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Decode([]byte(tt.in), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, o.String())
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("objects = %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("numbers keep their type", func(t *testing.T) {
		objs, err := Decode([]byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {replicas: 3, ratio: 0.5}\n"), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		spec := objs[0].Obj.Object["spec"].(map[string]any)
		if _, ok := spec["replicas"].(int64); !ok {
			t.Fatalf("replicas is %T, want int64", spec["replicas"])
		}
		if _, ok := spec["ratio"].(float64); !ok {
			t.Fatalf("ratio is %T, want float64", spec["ratio"])
		}
	})
}

func TestDecodeRejects(t *testing.T) {
	cm := func(name string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n"
	}
	bomb := "a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		bomb += fmt.Sprintf("%s: &%s [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]\n", n, n, prev, prev, prev, prev, prev, prev, prev, prev, prev)
		prev = n
	}
	bomb = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\n" + bomb
	tests := []struct {
		name, in, reason string
		lim              Limits
	}{
		{"garbage YAML", "apiVersion: v1\nkind: [unclosed\n", "document 1: malformed YAML", Limits{}},
		{"a scalar document", "just text\n", "document 1: want an object", Limits{}},
		{"a missing kind", "apiVersion: v1\nmetadata: {name: a}\n", "document 1: kind is missing", Limits{}},
		{"a missing apiVersion", cm("a") + "---\nkind: Secret\nmetadata: {name: b}\n", "document 2: apiVersion is missing", Limits{}},
		{"a bad apiVersion", "apiVersion: a/b/c\nkind: X\nmetadata: {name: a}\n", `apiVersion "a/b/c"`, Limits{}},
		{"a missing name", "apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: x}\n", "ConfigMap: metadata.name is missing", Limits{}},
		{"generateName", "apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: x-}\n", "generateName is not supported", Limits{}},
		{"a name with a slash", cm("a/b"), "may not contain '/'", Limits{}},
		{"a bad namespace", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: Not_Valid}\n", `metadata.namespace "Not_Valid"`, Limits{}},
		{"a non-string label", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {x: 1}}\n", `metadata.labels["x"] is not a string`, Limits{}},
		{"a duplicate object", cm("a") + "---\n" + cm("b") + "---\n" + cm("a"), "ConfigMap a (document 3) is given twice, first in document 1", Limits{}},
		{"a duplicate across versions", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\n---\napiVersion: apps/v1beta1\nkind: Deployment\nmetadata: {name: a}\n", "given twice", Limits{}},
		{"too many objects", cm("a") + "---\n" + cm("b") + "---\n" + cm("c"), "document 3: more than 2 objects", Limits{MaxObjects: 2}},
		{"a bundle over the size cap", cm("a") + "---\n" + cm("b"), "larger than the 50 the agent accepts", Limits{MaxBytes: 50}},
		{"an object over the per-object cap", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {x: " + strings.Repeat("y", 600) + "}\n", "object of", Limits{MaxObjectBytes: 500}},
		{"a document over twice the per-object cap", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n# " + strings.Repeat("y", 1200) + "\n", "a document may be", Limits{MaxObjectBytes: 500}},
		{"a YAML alias bomb", bomb, "document 1: malformed YAML: yaml: document contains excessive aliasing", Limits{}},
		{"malformed JSON", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}} {"apiVersion":`, "document 2: malformed JSON", Limits{}},
		{"a document continuing on the separator line", cm("a") + "--- {kind: ConfigMap}\n", "document 2: apiVersion is missing", Limits{}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is rejected", func(t *testing.T) {
			objs, err := Decode([]byte(tt.in), tt.lim)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("Decode = %d objects, %v; want ErrInvalid saying %q", len(objs), err, tt.reason)
			}
		})
	}
}

// FuzzDecodeBundle feeds arbitrary bytes to Decode: it must never panic,
// never return more objects than the cap, and every object it returns must
// carry apiVersion, kind and name.
func FuzzDecodeBundle(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: b}\n"))
	f.Add([]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}]`))
	f.Add([]byte("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"))
	f.Add([]byte("--- \n---\n- 1\n- [2]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := Limits{MaxBytes: 1 << 16, MaxObjects: 8, MaxObjectBytes: 1 << 12}
		objs, err := Decode(data, lim)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if len(objs) > lim.MaxObjects {
			t.Fatalf("%d objects, more than the cap", len(objs))
		}
		for _, o := range objs {
			if o.Obj.GetAPIVersion() == "" || o.Obj.GetKind() == "" || o.Obj.GetName() == "" {
				t.Fatalf("%s lacks apiVersion, kind or name", o)
			}
		}
	})
}
