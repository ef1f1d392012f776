package store

import (
	"testing"
	"time"
)

func FuzzSettleTerraformResult(f *testing.F) {
	f.Add([]byte(`{"plan":{"add":1,"destroy":2,"digest":"sha256:x","resources":[{"address":"a.b","action":"delete"}]},"awaiting_approval":true}`))
	f.Add([]byte(`{"plan":null,"awaiting_approval":true,"outputs":{"a":1}}`))
	f.Add([]byte(`{"outputs":"x"}`))
	f.Add([]byte(`not json`))
	cur := ReleaseRow{Release: Release{Name: "infra", Kind: KindTerraform, Revision: 2, AppliedRevision: 1, Sync: SyncPending, TaskID: "t"}}
	f.Fuzz(func(t *testing.T, result []byte) {
		c := SettleRelease(cur, Task{ID: "t", State: StateSucceeded, Result: result}, "prod", time.Unix(1, 0))
		if !c.Write {
			t.Fatalf("change %+v: want the release written", c)
		}
		switch c.Row.Sync {
		case SyncAwaitingApproval:
			if c.Row.AppliedRevision != 1 || c.Result == nil || c.Result.Revision != 2 || c.Result.Plan == nil || c.Result.Outputs != nil || c.Event == nil {
				t.Fatalf("held plan: %+v", c)
			}
		case SyncInSync:
			if c.Row.AppliedRevision != 2 || c.Result == nil || c.Result.Revision != 2 || c.Result.Plan == nil {
				t.Fatalf("applied: %+v", c)
			}
			if o := c.Result.Outputs; o != nil && o[0] != '{' {
				t.Fatalf("outputs %q stored, want a JSON object or nothing", o)
			}
		case SyncFailed:
			// No readable plan: nothing is assumed applied or held.
			if c.Row.AppliedRevision != 1 || c.Result != nil || c.Row.LastError == "" {
				t.Fatalf("failed: %+v", c)
			}
		default:
			t.Fatalf("sync %s", c.Row.Sync)
		}
	})
}

func TestApprovalMessage(t *testing.T) {
	tests := []struct {
		name string
		plan PlanSummary
		want string
	}{
		{"a plan that destroys names the count", PlanSummary{Add: 1, Destroy: 3}, "plan destroys 3 resources; approve it with outpost release approve infra"},
		{"a plan that destroys one says so in the singular", PlanSummary{Add: 1, Destroy: 1}, "plan destroys 1 resource; approve it with outpost release approve infra"},
		{"a plan that only adds counts every change", PlanSummary{Add: 2, Change: 1}, "plan adds 2, changes 1 and destroys 0 resources; approve it with outpost release approve infra"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := approvalMessage("infra", &tt.plan); got != tt.want {
				t.Fatalf("approvalMessage = %q, want %q", got, tt.want)
			}
		})
	}
}
