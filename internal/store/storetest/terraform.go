package storetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/store"
)

var terraformScenarios = []scenario{
	{"a terraform release defaults to detect, other kinds to correct", testTerraformDefaultMode},
	{"a held terraform plan awaits approval and only its own digest approves it", testTerraformApproval},
	{"a terraform result without a readable plan fails the release instead of calling it applied", testTerraformGarbageResult},
	{"terraform drift is stored and audited by resource address", testTerraformDrift},
}

// Plan digests of the scenarios.
var (
	planA = "sha256:" + strings.Repeat("a", 64)
	planB = "sha256:" + strings.Repeat("b", 64)
)

// terraformRevision returns a terraform revision of release name without
// a mode, so the store picks it.
func (f *fixture) terraformRevision(name, digest string) store.ReleaseRevision {
	rev := f.revision(name, digest)
	rev.Kind = store.KindTerraform
	rev.Mode = ""
	rev.Ignore = nil
	rev.Artifacts = nil
	return rev
}

// finish claims the queued tasks and completes taskID successfully with
// result.
func (f *fixture) finish(t *testing.T, taskID string, result []byte, now time.Time) {
	t.Helper()
	f.claim(t, "a1", 100, now)
	task := f.get(t, taskID)
	if task.State != store.StateLeased {
		t.Fatalf("task %s is %s, want leased", taskID, task.State)
	}
	_, err := f.s.CompleteTask(t.Context(), store.CompleteParams{
		Tenant: f.tenant, TaskID: taskID, Epoch: task.Attempt, AgentID: task.AgentID,
		Outcome: store.OutcomeSucceeded, Result: result, Backoff: minutes, Now: now,
	})
	must(t, err)
}

// approve approves name's revision with digest, with a task named taskID.
func (f *fixture) approve(t *testing.T, name string, revision int64, digest, taskID string, now time.Time) (store.Release, store.Task, error) {
	t.Helper()
	return f.s.ApproveRelease(t.Context(), store.ApproveReleaseParams{
		Tenant: f.tenant, EnvironmentID: f.env.ID, Name: name, Revision: revision, PlanDigest: digest,
		Actor: "operator:tok2", Now: now,
		Task: func(rev store.ReleaseRevision) (store.Task, error) {
			task := f.task(taskID)
			task.Spec = []byte(fmt.Sprintf(`{"release":%q,"revision":%d,"approved_plan":%q}`, rev.Release, rev.Revision, digest))
			return task, nil
		},
	})
}

func resultJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	return b
}

func testTerraformDefaultMode(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	tests := []struct {
		name string
		rev  store.ReleaseRevision
		want store.ReleaseMode
	}{
		{"infra", f.terraformRevision("infra", "t1"), store.ModeDetect},
		{"web", func() store.ReleaseRevision { r := f.revision("web", "m1"); r.Mode = ""; return r }(), store.ModeCorrect},
	}
	for _, tt := range tests {
		r, rev, _, _ := f.apply(t, tt.rev, tt.name+"-1", T0)
		if r.Mode != tt.want || rev.Mode != tt.want {
			t.Fatalf("%s release without a mode: release %s revision %s, want %s", tt.rev.Kind, r.Mode, rev.Mode, tt.want)
		}
	}
}

func testTerraformApproval(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	l := listen(t, s, s, f)
	prod := store.Wakeup{Tenant: f.tenant, EnvironmentID: f.env.ID}

	f.apply(t, f.terraformRevision("infra", "t1"), "infra-1", T0)
	l.want(t, "the release's task", prod)
	plan := &store.PlanSummary{Add: 1, Change: 0, Destroy: 25, HasChanges: true, Digest: planA,
		Resources: []store.PlanResource{{Address: "aws_s3_bucket.logs", Action: "create"}}}
	for i := range 25 {
		plan.Resources = append(plan.Resources, store.PlanResource{Address: fmt.Sprintf("aws_instance.old[%d]", i), Action: "delete"})
	}
	held := resultJSON(t, map[string]any{
		"action": "apply", "workspace": "infra", "plan": plan, "awaiting_approval": true, "changed": false,
	})
	f.finish(t, "infra-1", held, T0.Add(time.Second))
	l.quiet(t, f, s, "a held plan (nothing applied, the desired state unchanged)")

	r := f.release(t, "infra")
	wantRelease(t, r, 1, 0, store.SyncAwaitingApproval, "infra-1")
	if !strings.Contains(r.LastError, "plan destroys 25 resources; approve it with outpost release approve infra") {
		t.Fatalf("LastError = %q, want the destroy count and how to approve", r.LastError)
	}
	rev, err := s.GetReleaseRevision(ctx, f.tenant, f.env.ID, "infra", 1)
	must(t, err)
	if !reflect.DeepEqual(rev.Plan, plan) || rev.Outputs != nil {
		t.Fatalf("revision plan %+v outputs %s, want %+v and no outputs", rev.Plan, rev.Outputs, plan)
	}
	required := f.releaseEvents(t, store.ActionReleaseApprovalRequired)
	if len(required) != 1 {
		t.Fatalf("%d %s events, want 1", len(required), store.ActionReleaseApprovalRequired)
	}
	var details struct {
		Revision      int64    `json:"revision"`
		Digest        string   `json:"digest"`
		Add           int      `json:"add"`
		Destroy       int      `json:"destroy"`
		Destroyed     []string `json:"destroyed"`
		DestroyedMore int      `json:"destroyed_more"`
	}
	must(t, json.Unmarshal([]byte(required[0].Details), &details))
	if details.Revision != 1 || details.Digest != planA || details.Add != 1 || details.Destroy != 25 ||
		len(details.Destroyed) != store.MaxAuditedAddresses || details.Destroyed[0] != "aws_instance.old[0]" || details.DestroyedMore != 5 {
		t.Fatalf("%s details = %s", store.ActionReleaseApprovalRequired, required[0].Details)
	}

	// Refused approvals change nothing.
	refused := []struct {
		name     string
		revision int64
		digest   string
		want     error
	}{
		{"another digest", 1, planB, store.ErrPlanChanged},
		{"another revision", 2, planA, store.ErrPlanChanged},
	}
	events := len(f.events(t))
	for _, tt := range refused {
		_, _, err := f.approve(t, "infra", tt.revision, tt.digest, "infra-refused", T0.Add(2*time.Second))
		wantErr(t, err, tt.want)
		wantRelease(t, f.release(t, "infra"), 1, 0, store.SyncAwaitingApproval, "infra-1")
		_, err = s.GetTask(ctx, f.tenant, "infra-refused")
		wantErr(t, err, store.ErrNotFound)
	}
	_, _, err = f.approve(t, "nope", 1, planA, "nope-1", T0)
	wantErr(t, err, store.ErrNotFound)
	if got := len(f.events(t)); got != events {
		t.Fatalf("refused approvals appended %d events", got-events)
	}

	// The reviewed plan is approved: a new task, the release pending.
	r, task, err := f.approve(t, "infra", 1, planA, "infra-approved", T0.Add(3*time.Second))
	must(t, err)
	l.want(t, "the approved plan's task", prod)
	wantRelease(t, r, 1, 0, store.SyncPending, "infra-approved")
	if r.LastError != "" || task.ID != "infra-approved" || task.State != store.StateQueued ||
		!strings.Contains(string(f.get(t, "infra-approved").Spec), planA) {
		t.Fatalf("approved: release %+v task %+v", r, task)
	}
	wantRelease(t, f.release(t, "infra"), 1, 0, store.SyncPending, "infra-approved")
	approved := f.releaseEvents(t, store.ActionReleaseApproved)
	if len(approved) != 1 || approved[0].Actor != "operator:tok2" || approved[0].Environment != "prod" ||
		!strings.Contains(approved[0].Details, `"digest":"`+planA+`"`) || !strings.Contains(approved[0].Details, `"revision":1`) {
		t.Fatalf("%s events = %+v", store.ActionReleaseApproved, approved)
	}
	_, _, err = f.approve(t, "infra", 1, planA, "infra-twice", T0.Add(4*time.Second))
	wantErr(t, err, store.ErrNotAwaitingApproval)

	// The approved task applies: in sync, plan and outputs on the revision.
	appliedPlan := *plan
	appliedPlan.Resources = plan.Resources[:1]
	f.finish(t, "infra-approved", resultJSON(t, map[string]any{
		"action": "apply", "workspace": "infra", "plan": appliedPlan, "changed": true,
		"outputs": map[string]any{"bucket": "logs-1", "password": "[REDACTED]"},
	}), T0.Add(5*time.Second))
	l.want(t, "the applied revision", store.Wakeup{Tenant: f.tenant, EnvironmentID: f.env.ID, DesiredState: true})
	r = f.release(t, "infra")
	wantRelease(t, r, 1, 1, store.SyncInSync, "infra-approved")
	if r.LastError != "" || r.AppliedTaskID != "infra-approved" {
		t.Fatalf("applied release %+v", r)
	}
	rev, err = s.GetReleaseRevision(ctx, f.tenant, f.env.ID, "infra", 1)
	must(t, err)
	if !reflect.DeepEqual(rev.Plan, &appliedPlan) {
		t.Fatalf("revision plan %+v, want %+v", rev.Plan, appliedPlan)
	}
	wantJSON(t, "revision outputs", rev.Outputs, `{"bucket":"logs-1","password":"[REDACTED]"}`)
	desired, err := s.ListDesiredReleases(ctx, f.tenant, f.env.ID)
	must(t, err)
	if len(desired) != 1 || desired[0].Revision.Plan == nil || desired[0].Revision.Kind != store.KindTerraform {
		t.Fatalf("desired releases = %+v", desired)
	}
	revs, err := s.ListReleaseRevisions(ctx, f.tenant, f.env.ID, "infra")
	must(t, err)
	if len(revs) != 1 || revs[0].Plan == nil || revs[0].Plan.Digest != planA {
		t.Fatalf("ListReleaseRevisions = %+v", revs)
	}
	_, _, err = f.approve(t, "infra", 1, planA, "infra-again", T0.Add(6*time.Second))
	wantErr(t, err, store.ErrNotAwaitingApproval)
	noSecretsAudited(t, f)
}

// wantJSON fails unless got is the JSON document want (the stores may
// reformat it).
func wantJSON(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s = %q: %v", what, got, err)
	}
	must(t, json.Unmarshal([]byte(want), &w))
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s = %s, want %s", what, got, want)
	}
}

func testTerraformGarbageResult(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	tests := []struct {
		name   string
		result []byte
	}{
		{"garbage", []byte("not json{")},
		{"empty", nil},
		{"truncated", []byte(`{"truncated":true}`)},
		{"wrong", []byte(`{"plan":"yes","awaiting_approval":"maybe"}`)},
	}
	for _, tt := range tests {
		f.apply(t, f.terraformRevision(tt.name, "g1"), tt.name+"-1", T0)
		f.finish(t, tt.name+"-1", tt.result, T0.Add(time.Second))
		r := f.release(t, tt.name)
		if r.Sync != store.SyncFailed || r.AppliedRevision != 0 || !strings.Contains(r.LastError, "no readable plan") {
			t.Fatalf("%s result: release %s, applied %d, error %q; want failed, nothing applied", tt.name, r.Sync, r.AppliedRevision, r.LastError)
		}
	}
	// A plan with outputs that are no JSON object is applied, the outputs
	// dropped.
	f.apply(t, f.terraformRevision("outputs", "g1"), "outputs-1", T0)
	f.finish(t, "outputs-1", []byte(`{"plan":{"add":1,"has_changes":true,"digest":"`+planA+`"},"outputs":[1,2]}`), T0.Add(time.Second))
	wantRelease(t, f.release(t, "outputs"), 1, 1, store.SyncInSync, "outputs-1")
	rev, err := s.GetReleaseRevision(t.Context(), f.tenant, f.env.ID, "outputs", 1)
	must(t, err)
	if rev.Outputs != nil || rev.Plan == nil {
		t.Fatalf("outputs result: plan %+v outputs %s; want the plan, no outputs", rev.Plan, rev.Outputs)
	}
}

func testTerraformDrift(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	f.apply(t, f.terraformRevision("infra", "t1"), "infra-1", T0)
	f.finish(t, "infra-1", []byte(`{"action":"apply","plan":{"has_changes":false},"changed":false}`), T0.Add(time.Second))
	objects := []store.ObjectDrift{
		{Address: "module.db.aws_db_instance.main", Fields: []string{"update"}},
		{Address: "aws_s3_bucket.logs", Fields: []string{"create"}, Deleted: true},
	}
	p := store.DriftParams{
		Tenant: f.tenant, EnvironmentID: f.env.ID, Release: "infra", Revision: 1, Objects: objects, AgentID: "a1", Now: T0.Add(time.Minute),
	}
	r, err := s.RecordDrift(t.Context(), p)
	must(t, err)
	if r.Sync != store.SyncDrifted || !reflect.DeepEqual(r.Drift, objects) {
		t.Fatalf("release after drift: sync %s drift %+v", r.Sync, r.Drift)
	}
	stored := f.release(t, "infra")
	if !reflect.DeepEqual(stored.Drift, objects) {
		t.Fatalf("stored drift %+v, want %+v", stored.Drift, objects)
	}
	detected := f.releaseEvents(t, store.ActionReleaseDriftDetected)
	if len(detected) != 1 || !strings.Contains(detected[0].Details, `"drift":["module.db.aws_db_instance.main","aws_s3_bucket.logs"]`) {
		t.Fatalf("drift events = %+v", detected)
	}
	// The same report again is stored without an event; another address is
	// another drift.
	p.Now = p.Now.Add(time.Minute)
	_, err = s.RecordDrift(t.Context(), p)
	must(t, err)
	p.Objects = []store.ObjectDrift{{Address: "module.db.aws_db_instance.other", Fields: []string{"update"}}}
	_, err = s.RecordDrift(t.Context(), p)
	must(t, err)
	if n := len(f.releaseEvents(t, store.ActionReleaseDriftDetected)); n != 2 {
		t.Fatalf("%d drift events, want 2 (a repeat is not audited, another address is)", n)
	}
	if !bytes.Contains([]byte(f.releaseEvents(t, store.ActionReleaseDriftDetected)[1].Details), []byte("aws_db_instance.other")) {
		t.Fatal("the second drift event does not name the new address")
	}
}
