package terraform

import (
	"encoding/json"
	"testing"

	"github.com/outposthq/outpost/internal/taskspec"
)

func TestPlanDigest(t *testing.T) {
	replace := []taskspec.TerraformResourceChange{{Address: "terraform_data.a", Action: taskspec.ResourceReplace}, {Address: "terraform_data.b", Action: taskspec.ResourceCreate}}
	in := newPlanInputs([]byte("module"), map[string]json.RawMessage{"a": json.RawMessage(`{"y": 1.50, "x": [true]}`), "b": json.RawMessage(`"s"`)})
	base := planDigest(replace, false, in)
	if !taskspec.IsPlanDigest(base) {
		t.Fatalf("digest %q is not a plan digest", base)
	}
	tests := []struct {
		name      string
		resources []taskspec.TerraformResourceChange
		destroy   bool
		in        planInputs
		same      bool
	}{
		{"the same plan yields the same digest", []taskspec.TerraformResourceChange{{Address: "terraform_data.a", Action: taskspec.ResourceReplace}, {Address: "terraform_data.b", Action: taskspec.ResourceCreate}}, false, in, true},
		{"a different action yields a different digest", []taskspec.TerraformResourceChange{{Address: "terraform_data.a", Action: taskspec.ResourceUpdate}, {Address: "terraform_data.b", Action: taskspec.ResourceCreate}}, false, in, false},
		{"a different address yields a different digest", []taskspec.TerraformResourceChange{{Address: "terraform_data.c", Action: taskspec.ResourceReplace}, {Address: "terraform_data.b", Action: taskspec.ResourceCreate}}, false, in, false},
		{"another order yields a different digest", []taskspec.TerraformResourceChange{{Address: "terraform_data.b", Action: taskspec.ResourceCreate}, {Address: "terraform_data.a", Action: taskspec.ResourceReplace}}, false, in, false},
		{"a destroy plan of the same resources yields a different digest", replace, true, in, false},
		{"a missing resource yields a different digest", replace[:1], false, in, false},
		{"the same variables written otherwise yield the same digest", replace, false, newPlanInputs([]byte("module"), map[string]json.RawMessage{"b": json.RawMessage(` "s" `), "a": json.RawMessage(`{"x":[true],"y":1.50}`)}), true},
		{"other module bytes yield a different digest", replace, false, newPlanInputs([]byte("module2"), map[string]json.RawMessage{"a": json.RawMessage(`{"y": 1.50, "x": [true]}`), "b": json.RawMessage(`"s"`)}), false},
		{"another variable value yields a different digest", replace, false, newPlanInputs([]byte("module"), map[string]json.RawMessage{"a": json.RawMessage(`{"y": 1.5, "x": [true]}`), "b": json.RawMessage(`"s"`)}), false},
		{"a missing variable yields a different digest", replace, false, newPlanInputs([]byte("module"), map[string]json.RawMessage{"b": json.RawMessage(`"s"`)}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := planDigest(tt.resources, tt.destroy, tt.in); (got == base) != tt.same {
				t.Fatalf("digest %s, base %s, want same=%v", got, base, tt.same)
			}
		})
	}
}

func TestAddChange(t *testing.T) {
	var p taskspec.TerraformPlanSummary
	addChange(&p, "a", true, true, false, true)
	addChange(&p, "b", false, true, false, false)
	addChange(&p, "c", false, false, true, false)
	addChange(&p, "d", false, false, false, true)
	addChange(&p, "e", false, false, false, false)
	if p.Add != 2 || p.Destroy != 2 || p.Change != 1 {
		t.Fatalf("counts = %+v, want a replacement counted as an add and a destroy", p)
	}
	want := []string{"a:replace", "b:create", "c:update", "d:delete"}
	if len(p.Resources) != len(want) {
		t.Fatalf("resources = %v, want %v", p.Resources, want)
	}
	for i, rc := range p.Resources {
		if rc.Address+":"+rc.Action != want[i] {
			t.Fatalf("resources = %v, want %v", p.Resources, want)
		}
	}
}
