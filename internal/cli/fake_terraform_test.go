package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
)

// Plan digests of the fake terraform release.
var (
	appliedPlanDigest = "sha256:" + strings.Repeat("a", 64)
	heldPlanDigest    = "sha256:" + strings.Repeat("b", 64)
)

// seedTerraform adds prod/infra, a terraform release whose revision 1 is
// applied (with outputs) and whose revision 2's plan, which destroys a
// database, awaits approval.
func (h *fakeHub) seedTerraform() {
	h.mu.Lock()
	defer h.mu.Unlock()
	spec := []byte(`{"workspace":"infra","url":"https://example.com/infra.tar.gz","approval":"destroy"}`)
	detect := v1.ReleaseMode_RELEASE_MODE_DETECT
	revs := []*v1.ReleaseRevision{
		{Environment: "prod", Release: "infra", Revision: 1, Kind: "terraform", Spec: spec, Mode: detect, CreatedBy: "alice", CreatedAt: ts(-2 * time.Hour),
			Plan: &v1.PlanSummary{Add: 2, HasChanges: true, Digest: appliedPlanDigest, Resources: []*v1.ResourceChange{
				{Address: "aws_db_instance.main", Action: "create"}, {Address: "aws_s3_bucket.logs", Action: "create"},
			}},
			Outputs: []byte(`{"endpoint":"db.internal:5432","password":"[REDACTED]","ports":[5432, 5433]}`)},
		{Environment: "prod", Release: "infra", Revision: 2, Kind: "terraform", Spec: append(spec[:len(spec)-1:len(spec)-1], `,"variables":{"size":"large"}}`...),
			Mode: detect, CreatedBy: "bob", CreatedAt: ts(-time.Hour),
			Plan: &v1.PlanSummary{Add: 1, Change: 1, Destroy: 2, HasChanges: true, Digest: heldPlanDigest, Resources: []*v1.ResourceChange{
				{Address: "aws_db_instance.main", Action: "replace"}, {Address: "aws_s3_bucket.logs", Action: "update"},
				{Address: "aws_instance.old", Action: "delete"},
			}}},
	}
	for _, r := range revs {
		r.Digest = fakeDigest(r)
	}
	h.releases[releaseKey("prod", "infra")] = &fakeRelease{revs: revs, rel: &v1.Release{
		Tenant: fakeTenant, Environment: "prod", Name: "infra", Kind: "terraform", Revision: 2, AppliedRevision: 1,
		Sync: v1.ReleaseSync_RELEASE_SYNC_AWAITING_APPROVAL, Mode: detect, TaskId: "rt-infra-2",
		LastError: "plan destroys 2 resources; approve it with outpost release approve infra",
		Drift:     []*v1.ObjectDrift{{Address: "aws_s3_bucket.logs", Fields: []string{"update"}}},
		DriftAt:   ts(-30 * time.Minute),
		CreatedAt: ts(-2 * time.Hour), UpdatedAt: ts(-time.Hour),
	}}
}

// approvalsSent returns copies of the ApproveRelease requests received.
func (h *fakeHub) approvalsSent() []*v1.ApproveReleaseRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*v1.ApproveReleaseRequest, len(h.approvals))
	for i, r := range h.approvals {
		out[i] = proto.CloneOf(r)
	}
	return out
}

// ApproveRelease approves the plan the release's newest revision awaits,
// as the hub does: only with that revision and plan digest.
func (h *fakeHub) ApproveRelease(_ context.Context, req *connect.Request[v1.ApproveReleaseRequest]) (*connect.Response[v1.ApproveReleaseResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	m := req.Msg
	h.approvals = append(h.approvals, proto.CloneOf(m))
	r, err := h.release(m.GetEnvironment(), m.GetName())
	if err != nil {
		return nil, err
	}
	if r.rel.GetSync() != v1.ReleaseSync_RELEASE_SYNC_AWAITING_APPROVAL {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("no plan is awaiting approval"))
	}
	newest := r.revs[len(r.revs)-1]
	if h.replanBeforeApproval {
		newest.Plan.Digest = "sha256:" + strings.Repeat("d", 64)
	}
	if m.GetRevision() != newest.GetRevision() || m.GetPlanDigest() != newest.GetPlan().GetDigest() {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("the plan changed since you reviewed it: review the new plan"))
	}
	r.rel.Sync, r.rel.LastError = v1.ReleaseSync_RELEASE_SYNC_PENDING, ""
	r.rel.TaskId, r.rel.UpdatedAt = fmt.Sprintf("rt-%s-%d-approved", r.rel.GetName(), newest.GetRevision()), timestamppb.New(fakeNow)
	return connect.NewResponse(&v1.ApproveReleaseResponse{Release: proto.CloneOf(r.rel), TaskId: r.rel.GetTaskId()}), nil
}
