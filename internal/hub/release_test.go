package hub_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/hubtest"
	"github.com/outposthq/outpost/internal/taskspec"
)

const deployYAML = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  a: \"1\"\n"

func manifestsSpec(t *testing.T, bundle string) []byte {
	t.Helper()
	b, err := json.Marshal(taskspec.Manifests{Namespace: "shop", Bundle: bundle})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// claimOne claims the single queued task of the agent's environment.
func (a *rawAgent) claimOne(t *testing.T) *outpostv1.Lease {
	t.Helper()
	resp, err := a.client.Claim(t.Context(), connect.NewRequest(&outpostv1.ClaimRequest{MaxTasks: 10}))
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	if len(resp.Msg.GetLeases()) != 1 {
		t.Fatalf("claimed %d tasks, want 1", len(resp.Msg.GetLeases()))
	}
	return resp.Msg.GetLeases()[0]
}

func (a *rawAgent) report(t *testing.T, l *outpostv1.Lease, outcome outpostv1.Outcome, errText string) {
	t.Helper()
	if _, err := a.client.ReportResult(t.Context(), connect.NewRequest(&outpostv1.ReportResultRequest{
		TaskId: l.GetTask().GetId(), Epoch: l.GetEpoch(), Outcome: outcome, Result: []byte(`{}`), Error: errText,
	})); err != nil {
		t.Fatalf("report: %v", err)
	}
}

func getRelease(t *testing.T, h *hubtest.Hub, env, name string) *outpostv1.Release {
	t.Helper()
	resp, err := h.Operator.GetRelease(t.Context(), connect.NewRequest(&outpostv1.GetReleaseRequest{Environment: env, Name: name}))
	if err != nil {
		t.Fatalf("get release: %v", err)
	}
	return resp.Msg.GetRelease()
}

// pollDesired starts a long poll and returns a channel that says whether
// it ended with a desired-state wake-up.
func (a *rawAgent) pollDesired(t *testing.T) <-chan bool {
	t.Helper()
	got := make(chan bool, 1)
	go func() {
		resp, err := a.client.Poll(t.Context(), connect.NewRequest(&outpostv1.PollRequest{Wait: durationpb.New(10 * time.Second)}))
		got <- err == nil && resp.Msg.GetDesiredStateChanged()
	}()
	// The poll subscribes on arrival; give it that moment.
	time.Sleep(200 * time.Millisecond)
	return got
}

func TestReleaseLifecycle(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{})
	h.CreateEnvironment(t, "prod")
	agent := mustEnroll(t, h, "prod")
	apply := func(bundle string, mode outpostv1.ReleaseMode) *outpostv1.ApplyReleaseResponse {
		t.Helper()
		resp, err := h.Operator.ApplyRelease(t.Context(), connect.NewRequest(&outpostv1.ApplyReleaseRequest{
			Environment: "prod", Name: "shop", Kind: taskspec.KindManifests, Spec: manifestsSpec(t, bundle), Mode: mode,
			Ignore: []*outpostv1.IgnoreRule{{Group: "apps", Kind: "Deployment", Paths: []string{"/spec/replicas"}}},
		}))
		if err != nil {
			t.Fatalf("apply release: %v", err)
		}
		return resp.Msg
	}

	var first *outpostv1.Lease
	t.Run("applying a release makes revision 1 and a manifests task carrying it", func(t *testing.T) {
		got := apply(deployYAML, outpostv1.ReleaseMode_RELEASE_MODE_UNSPECIFIED)
		if !got.GetCreated() || got.GetRevision().GetRevision() != 1 || got.GetRelease().GetSync() != outpostv1.ReleaseSync_RELEASE_SYNC_PENDING {
			t.Fatalf("apply = created %v revision %d sync %v", got.GetCreated(), got.GetRevision().GetRevision(), got.GetRelease().GetSync())
		}
		first = agent.claimOne(t)
		var spec taskspec.Manifests
		if err := json.Unmarshal(first.GetTask().GetSpec(), &spec); err != nil {
			t.Fatal(err)
		}
		if spec.Release != "shop" || spec.Revision != 1 {
			t.Fatalf("task spec release %q revision %d, want shop 1", spec.Release, spec.Revision)
		}
		if !strings.Contains(strings.Join(first.GetTask().GetConflictKeys(), ","), "release/shop") {
			t.Fatalf("conflict keys %v lack release/shop", first.GetTask().GetConflictKeys())
		}
	})

	t.Run("applying the same content again makes no revision and no task", func(t *testing.T) {
		got := apply(deployYAML, outpostv1.ReleaseMode_RELEASE_MODE_CORRECT)
		if got.GetCreated() || got.GetRevision().GetRevision() != 1 {
			t.Fatalf("second apply created %v revision %d, want unchanged 1", got.GetCreated(), got.GetRevision().GetRevision())
		}
	})

	t.Run("the task's success applies the revision, wakes the agent and puts it in the desired state", func(t *testing.T) {
		woken := agent.pollDesired(t)
		agent.report(t, first, outpostv1.Outcome_OUTCOME_SUCCEEDED, "")
		if !<-woken {
			t.Fatal("the agent's poll did not end with a desired-state wake-up")
		}
		rel := getRelease(t, h, "prod", "shop")
		if rel.GetAppliedRevision() != 1 || rel.GetSync() != outpostv1.ReleaseSync_RELEASE_SYNC_IN_SYNC {
			t.Fatalf("release applied %d sync %v, want 1 in sync", rel.GetAppliedRevision(), rel.GetSync())
		}
		resp, err := agent.client.GetDesiredState(t.Context(), connect.NewRequest(&outpostv1.GetDesiredStateRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		rels := resp.Msg.GetReleases()
		if len(rels) != 1 || rels[0].GetRevision().GetRevision() != 1 || rels[0].GetTaskId() != first.GetTask().GetId() ||
			len(rels[0].GetRevision().GetIgnore()) != 1 {
			t.Fatalf("desired state = %v", rels)
		}
	})

	t.Run("a drift report shows the release drifted with its objects and fields", func(t *testing.T) {
		_, err := agent.client.ReportDrift(t.Context(), connect.NewRequest(&outpostv1.ReportDriftRequest{
			Release: "shop", Revision: 1,
			Objects: []*outpostv1.ObjectDrift{{Version: "v1", Kind: "ConfigMap", Namespace: "shop", Name: "web", Fields: []string{".data.a"}}},
		}))
		if err != nil {
			t.Fatal(err)
		}
		rel := getRelease(t, h, "prod", "shop")
		if rel.GetSync() != outpostv1.ReleaseSync_RELEASE_SYNC_DRIFTED || len(rel.GetDrift()) != 1 || rel.GetDrift()[0].GetFields()[0] != ".data.a" {
			t.Fatalf("release after drift report: sync %v drift %v", rel.GetSync(), rel.GetDrift())
		}
	})

	t.Run("a drift report an agent could not have made is refused", func(t *testing.T) {
		_, err := agent.client.ReportDrift(t.Context(), connect.NewRequest(&outpostv1.ReportDriftRequest{Release: "Shop!", Revision: 1}))
		wantCode(t, err, connect.CodeInvalidArgument)
		_, err = agent.client.ReportDrift(t.Context(), connect.NewRequest(&outpostv1.ReportDriftRequest{
			Release: "shop", Revision: 1, Objects: []*outpostv1.ObjectDrift{{Kind: "ConfigMap"}},
		}))
		wantCode(t, err, connect.CodeInvalidArgument)
	})

	t.Run("new content makes revision 2; the desired state stays at the applied revision until it succeeds", func(t *testing.T) {
		got := apply(strings.Replace(deployYAML, `"1"`, `"2"`, 1), outpostv1.ReleaseMode_RELEASE_MODE_DETECT)
		if !got.GetCreated() || got.GetRevision().GetRevision() != 2 {
			t.Fatalf("apply = created %v revision %d", got.GetCreated(), got.GetRevision().GetRevision())
		}
		resp, err := agent.client.GetDesiredState(t.Context(), connect.NewRequest(&outpostv1.GetDesiredStateRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		if r := resp.Msg.GetReleases(); len(r) != 1 || r[0].GetRevision().GetRevision() != 1 {
			t.Fatalf("desired state before the task = %v, want revision 1", r)
		}
		l := agent.claimOne(t)
		agent.report(t, l, outpostv1.Outcome_OUTCOME_FAILED, "apply: denied")
		rel := getRelease(t, h, "prod", "shop")
		if rel.GetSync() != outpostv1.ReleaseSync_RELEASE_SYNC_FAILED || !strings.Contains(rel.GetLastError(), "denied") || rel.GetAppliedRevision() != 1 {
			t.Fatalf("after a failed task: sync %v error %q applied %d", rel.GetSync(), rel.GetLastError(), rel.GetAppliedRevision())
		}
	})

	t.Run("applying a failed revision's content again retries it without a new revision", func(t *testing.T) {
		got := apply(strings.Replace(deployYAML, `"1"`, `"2"`, 1), outpostv1.ReleaseMode_RELEASE_MODE_DETECT)
		if got.GetCreated() || got.GetRevision().GetRevision() != 2 {
			t.Fatalf("retry apply = created %v revision %d", got.GetCreated(), got.GetRevision().GetRevision())
		}
		l := agent.claimOne(t)
		agent.report(t, l, outpostv1.Outcome_OUTCOME_SUCCEEDED, "")
		if rel := getRelease(t, h, "prod", "shop"); rel.GetAppliedRevision() != 2 || rel.GetMode() != outpostv1.ReleaseMode_RELEASE_MODE_DETECT {
			t.Fatalf("after retry: applied %d mode %v", rel.GetAppliedRevision(), rel.GetMode())
		}
	})

	t.Run("rollback makes a new revision with the old content", func(t *testing.T) {
		resp, err := h.Operator.RollbackRelease(t.Context(), connect.NewRequest(&outpostv1.RollbackReleaseRequest{Environment: "prod", Name: "shop", ToRevision: 1}))
		if err != nil {
			t.Fatal(err)
		}
		rev := resp.Msg.GetRevision()
		if rev.GetRevision() != 3 || rev.GetRolledBackFrom() != 1 {
			t.Fatalf("rollback revision %d from %d, want 3 from 1", rev.GetRevision(), rev.GetRolledBackFrom())
		}
		l := agent.claimOne(t)
		var spec taskspec.Manifests
		if err := json.Unmarshal(l.GetTask().GetSpec(), &spec); err != nil {
			t.Fatal(err)
		}
		if spec.Revision != 3 || spec.Bundle != deployYAML {
			t.Fatalf("rollback task: revision %d bundle %q", spec.Revision, spec.Bundle)
		}
		agent.report(t, l, outpostv1.Outcome_OUTCOME_SUCCEEDED, "")
		_, err = h.Operator.RollbackRelease(t.Context(), connect.NewRequest(&outpostv1.RollbackReleaseRequest{Environment: "prod", Name: "shop", ToRevision: 9}))
		wantCode(t, err, connect.CodeNotFound)
	})

	t.Run("history lists every revision, newest first", func(t *testing.T) {
		resp, err := h.Operator.ListReleaseRevisions(t.Context(), connect.NewRequest(&outpostv1.ListReleaseRevisionsRequest{Environment: "prod", Name: "shop"}))
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, r := range resp.Msg.GetRevisions() {
			got = append(got, r.GetRevision())
		}
		if len(got) != 3 || got[0] != 3 || got[2] != 1 {
			t.Fatalf("history = %v, want [3 2 1]", got)
		}
	})

	t.Run("deleting a release queues the removal and it is gone once that succeeds", func(t *testing.T) {
		resp, err := h.Operator.DeleteRelease(t.Context(), connect.NewRequest(&outpostv1.DeleteReleaseRequest{Environment: "prod", Name: "shop"}))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Msg.GetRelease().GetSync() != outpostv1.ReleaseSync_RELEASE_SYNC_DELETING {
			t.Fatalf("sync %v, want deleting", resp.Msg.GetRelease().GetSync())
		}
		_, err = h.Operator.ApplyRelease(t.Context(), connect.NewRequest(&outpostv1.ApplyReleaseRequest{
			Environment: "prod", Name: "shop", Kind: taskspec.KindManifests, Spec: manifestsSpec(t, deployYAML),
		}))
		wantCode(t, err, connect.CodeFailedPrecondition)
		l := agent.claimOne(t)
		var spec taskspec.Manifests
		if err := json.Unmarshal(l.GetTask().GetSpec(), &spec); err != nil {
			t.Fatal(err)
		}
		if !spec.Delete || spec.Release != "shop" {
			t.Fatalf("delete task spec = %+v", spec)
		}
		agent.report(t, l, outpostv1.Outcome_OUTCOME_SUCCEEDED, "")
		_, err = h.Operator.GetRelease(t.Context(), connect.NewRequest(&outpostv1.GetReleaseRequest{Environment: "prod", Name: "shop"}))
		wantCode(t, err, connect.CodeNotFound)
	})
}

func TestApplyReleaseRejectsBadInput(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{})
	h.CreateEnvironment(t, "prod")
	good := func() *outpostv1.ApplyReleaseRequest {
		return &outpostv1.ApplyReleaseRequest{Environment: "prod", Name: "shop", Kind: taskspec.KindManifests, Spec: manifestsSpec(t, deployYAML)}
	}
	cases := []struct {
		name   string
		change func(*outpostv1.ApplyReleaseRequest)
		code   connect.Code
		says   string
	}{
		{"a name that is not a DNS label", func(r *outpostv1.ApplyReleaseRequest) { r.Name = "Shop_1" }, connect.CodeInvalidArgument, "release name"},
		{"a kind releases do not have", func(r *outpostv1.ApplyReleaseRequest) { r.Kind = "http" }, connect.CodeInvalidArgument, "release kind"},
		{"a spec with an unknown field", func(r *outpostv1.ApplyReleaseRequest) { r.Spec = []byte(`{"bundle":"x","replicas":3}`) }, connect.CodeInvalidArgument, "replicas"},
		{"a spec naming another release", func(r *outpostv1.ApplyReleaseRequest) { r.Spec = []byte(`{"release":"other","bundle":"x"}`) }, connect.CodeInvalidArgument, "spec.release"},
		{"a spec that deletes", func(r *outpostv1.ApplyReleaseRequest) { r.Spec = []byte(`{"delete":true}`) }, connect.CodeInvalidArgument, "spec.delete"},
		{"an ignore path that is no JSON pointer", func(r *outpostv1.ApplyReleaseRequest) {
			r.Ignore = []*outpostv1.IgnoreRule{{Kind: "Deployment", Paths: []string{"spec.replicas"}}}
		}, connect.CodeInvalidArgument, "JSON pointer"},
		{"a helm spec that uninstalls", func(r *outpostv1.ApplyReleaseRequest) {
			r.Kind = taskspec.KindHelm
			r.Spec = []byte(`{"action":"uninstall","release":"shop","namespace":"shop"}`)
		}, connect.CodeInvalidArgument, "spec.action"},
		{"an artifact never uploaded", func(r *outpostv1.ApplyReleaseRequest) {
			r.Artifacts = []string{"sha256:" + strings.Repeat("a", 64)}
		}, connect.CodeFailedPrecondition, "not uploaded"},
	}
	for _, tc := range cases {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			req := good()
			tc.change(req)
			_, err := h.Operator.ApplyRelease(t.Context(), connect.NewRequest(req))
			wantCode(t, err, tc.code)
			if !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %q does not mention %q", err, tc.says)
			}
		})
	}
	t.Run("nothing was stored by the refused applies", func(t *testing.T) {
		resp, err := h.Operator.ListReleases(t.Context(), connect.NewRequest(&outpostv1.ListReleasesRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Msg.GetReleases()) != 0 {
			t.Fatalf("releases = %v, want none", resp.Msg.GetReleases())
		}
	})
	t.Run("a release cannot change kind", func(t *testing.T) {
		if _, err := h.Operator.ApplyRelease(t.Context(), connect.NewRequest(good())); err != nil {
			t.Fatal(err)
		}
		req := good()
		req.Kind = taskspec.KindHelm
		req.Spec = []byte(`{"release":"shop","namespace":"shop","chart":{"repository":"oci://example.com/charts/shop"}}`)
		_, err := h.Operator.ApplyRelease(t.Context(), connect.NewRequest(req))
		wantCode(t, err, connect.CodeFailedPrecondition)
	})
}
