package terraform

import (
	"testing"

	"github.com/outposthq/outpost/internal/taskspec"
)

func TestPlanDigest(t *testing.T) {
	replace := []taskspec.TerraformResourceChange{{Address: "terraform_data.a", Action: taskspec.ResourceReplace}, {Address: "terraform_data.b", Action: taskspec.ResourceCreate}}
	base := planDigest(replace, false)
	if !taskspec.IsPlanDigest(base) {
		t.Fatalf("digest %q is not a plan digest", base)
	}
	tests := []struct {
		name      string
		resources []taskspec.TerraformResourceChange
		destroy   bool
		same      bool
	}{
		{"the same plan yields the same digest", []taskspec.TerraformResourceChange{{Address: "terraform_data.a", Action: taskspec.ResourceReplace}, {Address: "terraform_data.b", Action: taskspec.ResourceCreate}}, false, true},
		{"a different action yields a different digest", []taskspec.TerraformResourceChange{{Address: "terraform_data.a", Action: taskspec.ResourceUpdate}, {Address: "terraform_data.b", Action: taskspec.ResourceCreate}}, false, false},
		{"a different address yields a different digest", []taskspec.TerraformResourceChange{{Address: "terraform_data.c", Action: taskspec.ResourceReplace}, {Address: "terraform_data.b", Action: taskspec.ResourceCreate}}, false, false},
		{"another order yields a different digest", []taskspec.TerraformResourceChange{{Address: "terraform_data.b", Action: taskspec.ResourceCreate}, {Address: "terraform_data.a", Action: taskspec.ResourceReplace}}, false, false},
		{"a destroy plan of the same resources yields a different digest", replace, true, false},
		{"a missing resource yields a different digest", replace[:1], false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := planDigest(tt.resources, tt.destroy); (got == base) != tt.same {
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
