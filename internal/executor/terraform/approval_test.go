package terraform_test

import (
	"strings"
	"testing"

	"github.com/outposthq/outpost/internal/taskspec"
)

// replaceable has a resource that a new revision replaces and one that a
// new note updates in place.
const replaceable = `
variable "rev" {
  type = string
}

variable "note" {
  type = string
}

resource "terraform_data" "r" {
  triggers_replace = var.rev
}

resource "terraform_data" "n" {
  input = var.note
}

output "note" {
  value = terraform_data.n.output
}
`

func TestExecuteApproval(t *testing.T) {
	h := newHarness(t)
	mod := tarGz(t, entry{name: "main.tf", body: replaceable})
	vars := func(rev, note string) map[string]any { return map[string]any{"rev": rev, "note": note} }
	destroy := map[string]any{"approval": taskspec.ApprovalDestroy}

	t.Run("a plan that only creates is applied under the destroy policy", func(t *testing.T) {
		res, err := h.execute(t, spec(mod, vars("1", "a"), destroy), nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.AwaitingApproval || !res.Changed || res.Plan.Add != 2 {
			t.Fatalf("result = %+v, want 2 resources created", res)
		}
	})
	var held string
	t.Run("a replacement is held for approval and nothing is applied", func(t *testing.T) {
		res, err := h.execute(t, spec(mod, vars("2", "a"), destroy), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !res.AwaitingApproval || res.Changed || res.Outputs != nil {
			t.Fatalf("result = %+v, want a held plan, nothing changed and no outputs", res)
		}
		if got := changes(res); got != "terraform_data.r:replace" || res.Plan.Add != 1 || res.Plan.Destroy != 1 {
			t.Fatalf("plan = %+v (%s), want terraform_data.r replaced", res.Plan, got)
		}
		if !taskspec.IsPlanDigest(res.Plan.Digest) {
			t.Fatalf("digest %q is not a plan digest", res.Plan.Digest)
		}
		held = res.Plan.Digest
		// The state is untouched: the old revision still plans nothing.
		again, err := h.execute(t, spec(mod, vars("1", "a"), map[string]any{"action": "plan"}), nil)
		if err != nil {
			t.Fatal(err)
		}
		if again.Plan.HasChanges {
			t.Fatalf("plan of the old revision = %+v, want no changes: the held plan was applied", again.Plan)
		}
	})
	t.Run("the same plan has the same digest", func(t *testing.T) {
		res, err := h.execute(t, spec(mod, vars("2", "a"), map[string]any{"action": "plan"}), nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Plan.Digest != held {
			t.Fatalf("digest = %s, want %s", res.Plan.Digest, held)
		}
	})
	t.Run("another approved digest does not release the plan", func(t *testing.T) {
		other := map[string]any{"approval": taskspec.ApprovalDestroy, "approved_plan": taskspec.PlanDigestPrefix + strings.Repeat("0", 64)}
		res, err := h.execute(t, spec(mod, vars("2", "a"), other), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !res.AwaitingApproval || res.Changed {
			t.Fatalf("result = %+v, want the plan still held", res)
		}
	})
	t.Run("an approved plan of other module bytes is held again", func(t *testing.T) {
		// The same resources and actions, from a module re-pushed with
		// other content under the same reference.
		repushed := tarGz(t, entry{name: "main.tf", body: replaceable + "\n# re-pushed\n"})
		approved := map[string]any{"approval": taskspec.ApprovalDestroy, "approved_plan": held}
		res, err := h.execute(t, spec(repushed, vars("2", "a"), approved), nil)
		if err != nil {
			t.Fatal(err)
		}
		if changes(res) != "terraform_data.r:replace" {
			t.Fatalf("plan = %+v, want the same replacement", res.Plan)
		}
		if !res.AwaitingApproval || res.Changed || res.Plan.Digest == held {
			t.Fatalf("result = %+v, want the plan held with a digest other than the approved %s", res, held)
		}
	})
	t.Run("an approved plan with other plain variables is held again", func(t *testing.T) {
		approved := map[string]any{"approval": taskspec.ApprovalDestroy, "approved_plan": held}
		res, err := h.execute(t, spec(mod, map[string]any{"rev": "2", "note": "a", "unused": "x"}, approved), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !res.AwaitingApproval || res.Changed || res.Plan.Digest == held {
			t.Fatalf("result = %+v, want the plan held with a digest other than the approved %s", res, held)
		}
	})
	t.Run("the approved digest applies the plan", func(t *testing.T) {
		approved := map[string]any{"approval": taskspec.ApprovalDestroy, "approved_plan": held}
		res, err := h.execute(t, spec(mod, vars("2", "a"), approved), nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.AwaitingApproval || !res.Changed || changes(res) != "terraform_data.r:replace" {
			t.Fatalf("result = %+v, want the replacement applied", res)
		}
	})
	t.Run("an update-only plan is applied directly under the destroy policy", func(t *testing.T) {
		res, err := h.execute(t, spec(mod, vars("2", "b"), destroy), nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.AwaitingApproval || !res.Changed || changes(res) != "terraform_data.n:update" {
			t.Fatalf("result = %+v, want the update applied", res)
		}
		if string(res.Outputs["note"]) != `"b"` {
			t.Fatalf("output note = %s, want \"b\"", res.Outputs["note"])
		}
		if res.Plan.Digest == held {
			t.Fatal("an update plan has the digest of a replacement plan")
		}
	})
	t.Run("the always policy holds an update", func(t *testing.T) {
		res, err := h.execute(t, spec(mod, vars("2", "c"), map[string]any{"approval": taskspec.ApprovalAlways}), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !res.AwaitingApproval || res.Changed {
			t.Fatalf("result = %+v, want the update held", res)
		}
	})
}
