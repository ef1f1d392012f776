package hub_test

import (
	"encoding/json"
	"strings"
	"testing"

	"connectrpc.com/connect"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/hubtest"
	"github.com/outposthq/outpost/internal/taskspec"
)

const terraformModuleURL = "https://example.com/modules/infra.tar.gz"

var (
	heldDigest  = "sha256:" + strings.Repeat("1", 64)
	otherDigest = "sha256:" + strings.Repeat("2", 64)
)

func terraformSpec(t *testing.T, edit func(*taskspec.Terraform)) []byte {
	t.Helper()
	s := taskspec.Terraform{URL: terraformModuleURL, Approval: taskspec.ApprovalDestroy,
		Variables: map[string]json.RawMessage{"size": json.RawMessage(`3`)}}
	if edit != nil {
		edit(&s)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reportResult reports the lease's success with result.
func (a *rawAgent) reportResult(t *testing.T, l *outpostv1.Lease, result taskspec.TerraformResult) {
	t.Helper()
	doc, err := json.Marshal(result)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.client.ReportResult(t.Context(), connect.NewRequest(&outpostv1.ReportResultRequest{
		TaskId: l.GetTask().GetId(), Epoch: l.GetEpoch(), Outcome: outpostv1.Outcome_OUTCOME_SUCCEEDED, Result: doc,
	})); err != nil {
		t.Fatalf("report: %v", err)
	}
}

func terraformTaskSpec(t *testing.T, l *outpostv1.Lease) taskspec.Terraform {
	t.Helper()
	var s taskspec.Terraform
	if err := json.Unmarshal(l.GetTask().GetSpec(), &s); err != nil {
		t.Fatal(err)
	}
	if l.GetTask().GetKind() != taskspec.KindTerraform {
		t.Fatalf("task kind %q, want terraform", l.GetTask().GetKind())
	}
	return s
}

func getRevision(t *testing.T, h *hubtest.Hub, name string, n int64) *outpostv1.ReleaseRevision {
	t.Helper()
	resp, err := h.Operator.GetReleaseRevision(t.Context(), connect.NewRequest(&outpostv1.GetReleaseRevisionRequest{Environment: "prod", Name: name, Revision: n}))
	if err != nil {
		t.Fatalf("get revision: %v", err)
	}
	return resp.Msg.GetRevision()
}

func TestTerraformReleaseLifecycle(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{})
	h.CreateEnvironment(t, "prod")
	agent := mustEnroll(t, h, "prod")
	approve := func(revision int64, digest string) (*outpostv1.ApproveReleaseResponse, error) {
		resp, err := h.Operator.ApproveRelease(t.Context(), connect.NewRequest(&outpostv1.ApproveReleaseRequest{
			Environment: "prod", Name: "infra", Revision: revision, PlanDigest: digest,
		}))
		if err != nil {
			return nil, err
		}
		return resp.Msg, nil
	}
	heldPlan := taskspec.TerraformPlanSummary{Add: 1, Destroy: 1, HasChanges: true, Digest: heldDigest, Resources: []taskspec.TerraformResourceChange{
		{Address: "aws_s3_bucket.logs", Action: taskspec.ResourceCreate}, {Address: "aws_instance.old", Action: taskspec.ResourceDelete},
	}}

	t.Run("applying a terraform release runs its module on the workspace named after it, in detect mode", func(t *testing.T) {
		resp, err := h.Operator.ApplyRelease(t.Context(), connect.NewRequest(&outpostv1.ApplyReleaseRequest{
			Environment: "prod", Name: "infra", Kind: taskspec.KindTerraform, Spec: terraformSpec(t, nil),
		}))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Msg.GetRelease().GetMode() != outpostv1.ReleaseMode_RELEASE_MODE_DETECT || resp.Msg.GetRevision().GetMode() != outpostv1.ReleaseMode_RELEASE_MODE_DETECT {
			t.Fatalf("mode %v, want detect by default", resp.Msg.GetRelease().GetMode())
		}
		l := agent.claimOne(t)
		spec := terraformTaskSpec(t, l)
		if spec.Workspace != "infra" || spec.EffectiveAction() != taskspec.TerraformApply || spec.ApprovedPlan != "" || spec.Approval != taskspec.ApprovalDestroy {
			t.Fatalf("task spec = %+v", spec)
		}
		if !strings.Contains(strings.Join(l.GetTask().GetConflictKeys(), ","), "tf/infra") {
			t.Fatalf("conflict keys %v lack the workspace's", l.GetTask().GetConflictKeys())
		}

		agent.reportResult(t, l, taskspec.TerraformResult{Action: "apply", Workspace: "infra", Plan: heldPlan, AwaitingApproval: true})
	})

	t.Run("a held plan leaves the release awaiting approval with the plan on its revision", func(t *testing.T) {
		rel := getRelease(t, h, "prod", "infra")
		if rel.GetSync() != outpostv1.ReleaseSync_RELEASE_SYNC_AWAITING_APPROVAL || rel.GetAppliedRevision() != 0 ||
			!strings.Contains(rel.GetLastError(), "plan destroys 1 resource; approve it with outpost release approve") {
			t.Fatalf("release sync %v applied %d error %q", rel.GetSync(), rel.GetAppliedRevision(), rel.GetLastError())
		}
		plan := getRevision(t, h, "infra", 1).GetPlan()
		if plan.GetDigest() != heldDigest || plan.GetDestroy() != 1 || plan.GetAdd() != 1 || len(plan.GetResources()) != 2 ||
			plan.GetResources()[1].GetAddress() != "aws_instance.old" || plan.GetResources()[1].GetAction() != "delete" {
			t.Fatalf("revision plan = %v", plan)
		}
		desired, err := agent.client.GetDesiredState(t.Context(), connect.NewRequest(&outpostv1.GetDesiredStateRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		if len(desired.Msg.GetReleases()) != 0 {
			t.Fatalf("desired state = %v, want nothing applied yet", desired.Msg.GetReleases())
		}
	})

	t.Run("an approval of another plan or revision is refused and changes nothing", func(t *testing.T) {
		_, err := approve(1, otherDigest)
		wantCode(t, err, connect.CodeFailedPrecondition)
		if !strings.Contains(err.Error(), "the plan changed since you reviewed it") {
			t.Fatalf("error %q does not say the plan changed", err)
		}
		_, err = approve(2, heldDigest)
		wantCode(t, err, connect.CodeNotFound)
		_, err = approve(1, "sha256:short")
		wantCode(t, err, connect.CodeInvalidArgument)
		_, err = approve(0, heldDigest)
		wantCode(t, err, connect.CodeInvalidArgument)
		rel := getRelease(t, h, "prod", "infra")
		if rel.GetSync() != outpostv1.ReleaseSync_RELEASE_SYNC_AWAITING_APPROVAL || rel.GetTaskId() == "" {
			t.Fatalf("release after refused approvals: %v", rel)
		}
		tasks, err := h.Operator.ListTasks(t.Context(), connect.NewRequest(&outpostv1.ListTasksRequest{Environment: "prod"}))
		if err != nil {
			t.Fatal(err)
		}
		if len(tasks.Msg.GetTasks()) != 1 {
			t.Fatalf("%d tasks after refused approvals, want only the first", len(tasks.Msg.GetTasks()))
		}
	})

	t.Run("approving the reviewed plan queues a task that applies only that plan", func(t *testing.T) {
		resp, err := approve(1, heldDigest)
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetRelease().GetSync() != outpostv1.ReleaseSync_RELEASE_SYNC_PENDING || resp.GetTaskId() == "" || resp.GetRelease().GetTaskId() != resp.GetTaskId() {
			t.Fatalf("approve = %v", resp)
		}
		_, err = approve(1, heldDigest)
		wantCode(t, err, connect.CodeFailedPrecondition)
		l := agent.claimOne(t)
		if l.GetTask().GetId() != resp.GetTaskId() {
			t.Fatalf("claimed %s, want the approved task %s", l.GetTask().GetId(), resp.GetTaskId())
		}
		spec := terraformTaskSpec(t, l)
		if spec.ApprovedPlan != heldDigest || spec.Workspace != "infra" || spec.Approval != taskspec.ApprovalDestroy {
			t.Fatalf("approved task spec = %+v", spec)
		}
		agent.reportResult(t, l, taskspec.TerraformResult{Action: "apply", Workspace: "infra", Plan: heldPlan, Changed: true,
			Outputs: map[string]json.RawMessage{"bucket": json.RawMessage(`"logs-1"`), "token": json.RawMessage(`"[REDACTED]"`)}})
	})

	t.Run("the applied plan puts the release in sync with the outputs on its revision", func(t *testing.T) {
		rel := getRelease(t, h, "prod", "infra")
		if rel.GetSync() != outpostv1.ReleaseSync_RELEASE_SYNC_IN_SYNC || rel.GetAppliedRevision() != 1 || rel.GetLastError() != "" {
			t.Fatalf("release sync %v applied %d error %q", rel.GetSync(), rel.GetAppliedRevision(), rel.GetLastError())
		}
		rev := getRevision(t, h, "infra", 1)
		var outputs map[string]string
		if err := json.Unmarshal(rev.GetOutputs(), &outputs); err != nil || outputs["bucket"] != "logs-1" || outputs["token"] != "[REDACTED]" {
			t.Fatalf("revision outputs %s (%v)", rev.GetOutputs(), err)
		}
		desired, err := agent.client.GetDesiredState(t.Context(), connect.NewRequest(&outpostv1.GetDesiredStateRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		if d := desired.Msg.GetReleases(); len(d) != 1 || d[0].GetRevision().GetKind() != taskspec.KindTerraform || !strings.Contains(string(d[0].GetRevision().GetSpec()), `"workspace":"infra"`) {
			t.Fatalf("desired state = %v", d)
		}
		if rev := desired.Msg.GetReleases()[0].GetRevision(); rev.GetPlan() != nil || rev.GetOutputs() != nil {
			t.Fatalf("the desired state carries the plan %v and outputs %s; agents need neither", rev.GetPlan(), rev.GetOutputs())
		}
	})

	t.Run("terraform drift is reported by resource address", func(t *testing.T) {
		_, err := agent.client.ReportDrift(t.Context(), connect.NewRequest(&outpostv1.ReportDriftRequest{
			Release: "infra", Revision: 1,
			Objects: []*outpostv1.ObjectDrift{{Address: "aws_s3_bucket.logs", Fields: []string{"update"}}},
		}))
		if err != nil {
			t.Fatal(err)
		}
		rel := getRelease(t, h, "prod", "infra")
		if rel.GetSync() != outpostv1.ReleaseSync_RELEASE_SYNC_DRIFTED || len(rel.GetDrift()) != 1 || rel.GetDrift()[0].GetAddress() != "aws_s3_bucket.logs" {
			t.Fatalf("release after drift: sync %v drift %v", rel.GetSync(), rel.GetDrift())
		}
		for _, bad := range []*outpostv1.ObjectDrift{
			{Address: strings.Repeat("a", 1025)},
			{Address: "aws_s3_bucket.logs\n"},
			{Address: "aws_s3_bucket.logs", Kind: "ConfigMap", Name: "x"},
		} {
			_, err := agent.client.ReportDrift(t.Context(), connect.NewRequest(&outpostv1.ReportDriftRequest{
				Release: "infra", Revision: 1, Objects: []*outpostv1.ObjectDrift{bad},
			}))
			wantCode(t, err, connect.CodeInvalidArgument)
		}
	})

	t.Run("deleting the release destroys its workspace without waiting for an approval", func(t *testing.T) {
		if _, err := h.Operator.DeleteRelease(t.Context(), connect.NewRequest(&outpostv1.DeleteReleaseRequest{Environment: "prod", Name: "infra"})); err != nil {
			t.Fatal(err)
		}
		spec := terraformTaskSpec(t, agent.claimOne(t))
		if spec.Action != taskspec.TerraformDestroy || spec.Workspace != "infra" || spec.Approval != "" || spec.ApprovedPlan != "" || spec.URL != terraformModuleURL {
			t.Fatalf("delete task spec = %+v", spec)
		}
	})
}

func TestTerraformReleaseRejectsBadInput(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{})
	h.CreateEnvironment(t, "prod")
	cases := []struct {
		name string
		spec []byte
		says string
	}{
		{"a plan-only action", terraformSpec(t, func(s *taskspec.Terraform) { s.Action = taskspec.TerraformPlan }), "approval: always"},
		{"a destroy action", terraformSpec(t, func(s *taskspec.Terraform) { s.Action = taskspec.TerraformDestroy }), "delete the release"},
		{"another workspace", terraformSpec(t, func(s *taskspec.Terraform) { s.Workspace = "other" }), "one workspace per release"},
		{"an approved plan", terraformSpec(t, func(s *taskspec.Terraform) { s.ApprovedPlan = heldDigest }), "spec.approved_plan"},
		{"an unknown field", []byte(`{"url":"` + terraformModuleURL + `","backend":"s3"}`), "backend"},
		{"no module", []byte(`{}`), "module source"},
		{"a secret as a sensitive variable", terraformSpec(t, func(s *taskspec.Terraform) { s.SensitiveVariables = map[string]string{"pw": "hunter2"} }), "vault reference"},
	}
	for _, tc := range cases {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			_, err := h.Operator.ApplyRelease(t.Context(), connect.NewRequest(&outpostv1.ApplyReleaseRequest{
				Environment: "prod", Name: "infra", Kind: taskspec.KindTerraform, Spec: tc.spec,
			}))
			wantCode(t, err, connect.CodeInvalidArgument)
			if !strings.Contains(err.Error(), tc.says) || strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error %q does not mention %q (or leaks a secret)", err, tc.says)
			}
		})
	}
	t.Run("a workspace equal to the release name is accepted and an explicit correct mode kept", func(t *testing.T) {
		resp, err := h.Operator.ApplyRelease(t.Context(), connect.NewRequest(&outpostv1.ApplyReleaseRequest{
			Environment: "prod", Name: "infra", Kind: taskspec.KindTerraform, Mode: outpostv1.ReleaseMode_RELEASE_MODE_CORRECT,
			Spec: terraformSpec(t, func(s *taskspec.Terraform) { s.Workspace = "infra" }),
		}))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Msg.GetRelease().GetMode() != outpostv1.ReleaseMode_RELEASE_MODE_CORRECT {
			t.Fatalf("mode %v, want the explicit correct", resp.Msg.GetRelease().GetMode())
		}
	})
	t.Run("a release that is not terraform has no plan to approve", func(t *testing.T) {
		if _, err := h.Operator.ApplyRelease(t.Context(), connect.NewRequest(&outpostv1.ApplyReleaseRequest{
			Environment: "prod", Name: "shop", Kind: taskspec.KindManifests, Spec: manifestsSpec(t, deployYAML),
		})); err != nil {
			t.Fatal(err)
		}
		_, err := h.Operator.ApproveRelease(t.Context(), connect.NewRequest(&outpostv1.ApproveReleaseRequest{
			Environment: "prod", Name: "shop", Revision: 1, PlanDigest: heldDigest,
		}))
		wantCode(t, err, connect.CodeFailedPrecondition)
		_, err = h.Operator.ApproveRelease(t.Context(), connect.NewRequest(&outpostv1.ApproveReleaseRequest{
			Environment: "prod", Name: "infra", Revision: 1, PlanDigest: heldDigest,
		}))
		wantCode(t, err, connect.CodeFailedPrecondition)
	})
}
