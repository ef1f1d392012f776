package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/outposthq/outpost/internal/audit"
	"github.com/outposthq/outpost/internal/store"
)

var releaseScenarios = []scenario{
	{"applying a release numbers its revisions and enqueues a task for each", testApplyRelease},
	{"success of a release's current task applies its revision and wakes the desired state", testReleaseSettlesOnSuccess},
	{"a release whose task fails, expires or is cancelled is failed and applies again", testReleaseSettlesOnFailure},
	{"a retryable failure that requeues the task leaves its release pending", testReleaseRetryableFailure},
	{"a release is deleted by its delete task", testDeleteRelease},
	{"the desired state lists the applied revision of releases not being deleted", testDesiredReleases},
	{"drift reports for the applied revision set the release's sync", testRecordDrift},
	{"another tenant can neither see nor change a release", testReleaseTenants},
	{"task counts count unfinished tasks and recent failures", testTaskCounts},
}

// specMarker is in every release spec and secret; it must never show up
// in audit details.
const specMarker = "SPEC-BODY-never-audited"

// tenantFixture is newFixture for another tenant of the same store.
func tenantFixture(t *testing.T, s store.Store, tenant string) *fixture {
	t.Helper()
	f := &fixture{s: s, tenant: tenant}
	f.env = store.Environment{ID: tenant + "-prod", Tenant: tenant, Name: "prod", CreatedAt: T0}
	f.env2 = store.Environment{ID: tenant + "-dev", Tenant: tenant, Name: "dev", CreatedAt: T0}
	must(t, s.CreateTenant(t.Context(), store.Tenant{Name: tenant, CreatedAt: T0}, "operator:root"))
	must(t, s.CreateEnvironment(t.Context(), f.env, "operator:root"))
	must(t, s.CreateEnvironment(t.Context(), f.env2, "operator:root"))
	return f
}

// revision returns a revision of release name of the fixture's first
// environment with content digest.
func (f *fixture) revision(name, digest string) store.ReleaseRevision {
	return store.ReleaseRevision{
		Tenant: f.tenant, EnvironmentID: f.env.ID, Release: name, Kind: "manifests",
		Spec:        []byte(`{"manifests":"` + specMarker + `","digest":"` + digest + `"}`),
		Artifacts:   []string{"sha256:" + strings.Repeat("a", 64)},
		Mode:        store.ModeDetect,
		Ignore:      []store.IgnoreRule{{Group: "apps", Kind: "Deployment", Paths: []string{"/spec/replicas"}}},
		Digest:      digest,
		Description: "deploy " + digest,
		CreatedBy:   "operator:tok1",
	}
}

// builder is a Task callback that records the revisions it was given.
type builder struct {
	f    *fixture
	id   string
	edit func(*store.Task)
	seen []store.ReleaseRevision
}

func (b *builder) build(rev store.ReleaseRevision) (store.Task, error) {
	b.seen = append(b.seen, rev)
	t := b.f.task(b.id)
	t.EnvironmentID = rev.EnvironmentID
	t.Spec = []byte(fmt.Sprintf(`{"release":%q,"revision":%d}`, rev.Release, rev.Revision))
	if b.edit != nil {
		b.edit(&t)
	}
	return t, nil
}

// apply applies rev at now with a task named taskID.
func (f *fixture) apply(t *testing.T, rev store.ReleaseRevision, taskID string, now time.Time) (store.Release, store.ReleaseRevision, bool, *builder) {
	t.Helper()
	b := &builder{f: f, id: taskID}
	r, v, created, err := f.s.ApplyRelease(t.Context(), store.ApplyReleaseParams{Revision: rev, Task: b.build, Now: now})
	must(t, err)
	return r, v, created, b
}

// applied applies rev with task taskID and completes that task.
func (f *fixture) applied(t *testing.T, rev store.ReleaseRevision, taskID string, now time.Time) store.Release {
	t.Helper()
	f.apply(t, rev, taskID, now)
	f.run(t, taskID, store.OutcomeSucceeded, now)
	return f.release(t, rev.Release)
}

// run claims the fixture's queued tasks and completes taskID with outcome
// (not retryable).
func (f *fixture) run(t *testing.T, taskID string, outcome store.Outcome, now time.Time) store.Task {
	t.Helper()
	f.claim(t, "a1", 100, now)
	task := f.get(t, taskID)
	if task.State != store.StateLeased {
		t.Fatalf("task %s is %s, want leased", taskID, task.State)
	}
	return f.complete(t, task, outcome, false, now)
}

func (f *fixture) release(t *testing.T, name string) store.Release {
	t.Helper()
	r, err := f.s.GetRelease(t.Context(), f.tenant, f.env.ID, name)
	must(t, err)
	return r
}

// deleteRelease requests the deletion of name with a task named taskID.
func (f *fixture) deleteRelease(t *testing.T, name, taskID string, now time.Time) (store.Release, error) {
	t.Helper()
	return f.s.DeleteRelease(t.Context(), store.DeleteReleaseParams{
		Tenant: f.tenant, EnvironmentID: f.env.ID, Name: name, Actor: "operator:tok1", Now: now,
		Task: func(r store.Release) (store.Task, error) {
			task := f.task(taskID)
			task.Spec = []byte(fmt.Sprintf(`{"delete":%q}`, r.Name))
			return task, nil
		},
	})
}

// wantRelease fails unless r has the given revisions, sync and task.
func wantRelease(t *testing.T, r store.Release, revision, applied int64, sync store.ReleaseSync, taskID string) {
	t.Helper()
	if r.Revision != revision || r.AppliedRevision != applied || r.Sync != sync || r.TaskID != taskID {
		t.Fatalf("release %s: revision %d applied %d sync %s task %q, want %d, %d, %s, %q",
			r.Name, r.Revision, r.AppliedRevision, r.Sync, r.TaskID, revision, applied, sync, taskID)
	}
}

// sameRevision compares what a store round-trips of a revision.
func sameRevision(t *testing.T, got, want store.ReleaseRevision) {
	t.Helper()
	if !got.CreatedAt.Equal(want.CreatedAt) {
		t.Fatalf("revision %d CreatedAt = %v, want %v", want.Revision, got.CreatedAt, want.CreatedAt)
	}
	got.CreatedAt, want.CreatedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("revision\n%+v\nwant\n%+v", got, want)
	}
}

// releaseEvents returns the tenant's events whose action starts with
// prefix.
func (f *fixture) releaseEvents(t *testing.T, prefix string) []audit.Event {
	t.Helper()
	var out []audit.Event
	for _, e := range f.events(t) {
		if strings.HasPrefix(e.Action, prefix) {
			out = append(out, e)
		}
	}
	return out
}

func actionsOf(es []audit.Event) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Action
	}
	return out
}

// noSecretsAudited fails if any event of the tenant carries a spec body
// or a sealed value, and checks the chain.
func noSecretsAudited(t *testing.T, f *fixture) {
	t.Helper()
	events := f.events(t)
	for _, e := range events {
		if strings.Contains(e.Details, specMarker) || strings.Contains(e.Details, sealedMarker) {
			t.Fatalf("event %d (%s) carries a spec or sealed value: %s", e.Seq, e.Action, e.Details)
		}
	}
	must(t, audit.Verify(events))
}

func testApplyRelease(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()

	in := f.revision("web", "d1")
	r, rev, created, b := f.apply(t, in, "web-1", T0)
	if !created || rev.Revision != 1 {
		t.Fatalf("first apply: created %v revision %d, want a revision 1", created, rev.Revision)
	}
	if len(b.seen) != 1 || b.seen[0].Revision != 1 || !b.seen[0].CreatedAt.Equal(T0) {
		t.Fatalf("the task builder saw %+v, want revision 1 created at T0", b.seen)
	}
	wantRelease(t, r, 1, 0, store.SyncPending, "web-1")
	if r.Kind != "manifests" || r.Mode != store.ModeDetect || r.Tenant != f.tenant || r.EnvironmentID != f.env.ID || r.Name != "web" {
		t.Fatalf("release = %+v", r)
	}
	want := in
	want.Revision = 1
	want.CreatedAt = T0
	sameRevision(t, rev, want)
	got, err := s.GetReleaseRevision(ctx, f.tenant, f.env.ID, "web", 1)
	must(t, err)
	sameRevision(t, got, want)
	stored := f.release(t, "web")
	wantRelease(t, stored, 1, 0, store.SyncPending, "web-1")
	wantTime(t, "release CreatedAt", stored.CreatedAt, T0)
	task := f.get(t, "web-1")
	if task.State != store.StateQueued || string(task.Spec) != `{"release":"web","revision":1}` {
		t.Fatalf("the release's task is %s with spec %s", task.State, task.Spec)
	}

	// The same content again: nothing new, and no task built.
	r, rev, created, b = f.apply(t, f.revision("web", "d1"), "web-again", T0.Add(time.Second))
	if created || rev.Revision != 1 || len(b.seen) != 0 {
		t.Fatalf("repeated apply: created %v revision %d builds %d, want nothing new", created, rev.Revision, len(b.seen))
	}
	wantRelease(t, r, 1, 0, store.SyncPending, "web-1")
	_, err = s.GetTask(ctx, f.tenant, "web-again")
	wantErr(t, err, store.ErrNotFound)

	// New content: revision 2.
	r, rev, created, b = f.apply(t, f.revision("web", "d2"), "web-2", T0.Add(2*time.Second))
	if !created || rev.Revision != 2 || len(b.seen) != 1 || b.seen[0].Revision != 2 {
		t.Fatalf("new content: created %v revision %d builder saw %+v", created, rev.Revision, b.seen)
	}
	wantRelease(t, r, 2, 0, store.SyncPending, "web-2")
	revs, err := s.ListReleaseRevisions(ctx, f.tenant, f.env.ID, "web")
	must(t, err)
	if len(revs) != 2 || revs[0].Revision != 2 || revs[1].Revision != 1 || revs[0].Digest != "d2" {
		t.Fatalf("ListReleaseRevisions = %+v, want 2 then 1", revs)
	}

	// A kind cannot change.
	helm := f.revision("web", "d3")
	helm.Kind = "helm"
	_, _, _, err = s.ApplyRelease(ctx, store.ApplyReleaseParams{Revision: helm, Task: (&builder{f: f, id: "web-helm"}).build, Now: T0})
	wantErr(t, err, store.ErrReleaseKindChanged)
	wantRelease(t, f.release(t, "web"), 2, 0, store.SyncPending, "web-2")
	_, err = s.GetTask(ctx, f.tenant, "web-helm")
	wantErr(t, err, store.ErrNotFound)

	// A task id already used for another task fails the apply whole.
	f.enqueue(t, f.task("taken"))
	_, _, _, err = s.ApplyRelease(ctx, store.ApplyReleaseParams{Revision: f.revision("web", "d4"), Task: (&builder{f: f, id: "taken"}).build, Now: T0})
	wantErr(t, err, store.ErrIdempotencyMismatch)
	_, err = s.GetReleaseRevision(ctx, f.tenant, f.env.ID, "web", 3)
	wantErr(t, err, store.ErrNotFound)

	// Listings.
	f.apply(t, f.revision("api", "a1"), "api-1", T0)
	other := f.revision("web", "x1")
	other.EnvironmentID = f.env2.ID
	f.apply(t, other, "dev-web-1", T0)
	all, err := s.ListReleases(ctx, f.tenant, "")
	must(t, err)
	var names []string
	for _, r := range all {
		names = append(names, r.EnvironmentID+"/"+r.Name)
	}
	if !slices.Equal(names, []string{"env-dev/web", "env-prod/api", "env-prod/web"}) {
		t.Fatalf("ListReleases = %v", names)
	}
	prod, err := s.ListReleases(ctx, f.tenant, f.env.ID)
	must(t, err)
	if len(prod) != 2 || prod[0].Name != "api" || prod[1].Name != "web" {
		t.Fatalf("ListReleases(prod) = %+v", prod)
	}
	_, err = s.GetRelease(ctx, f.tenant, f.env.ID, "nope")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.ListReleaseRevisions(ctx, f.tenant, f.env.ID, "nope")
	wantErr(t, err, store.ErrNotFound)

	applied := f.releaseEvents(t, "release.applied")
	if len(applied) != 4 {
		t.Fatalf("%d release.applied events, want 4", len(applied))
	}
	for _, k := range []string{`"release":"web"`, `"revision":1`, `"digest":"d1"`, `"kind":"manifests"`} {
		if !strings.Contains(applied[0].Details, k) {
			t.Fatalf("release.applied details %s lack %s", applied[0].Details, k)
		}
	}
	if applied[0].Environment != "prod" || applied[0].Actor != "operator:tok1" || applied[0].Subject != "web" {
		t.Fatalf("release.applied = %+v", applied[0])
	}
	noSecretsAudited(t, f)
}

func testReleaseSettlesOnSuccess(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	l := listen(t, s, s, f)
	prod := store.Wakeup{Tenant: f.tenant, EnvironmentID: f.env.ID}
	desired := store.Wakeup{Tenant: f.tenant, EnvironmentID: f.env.ID, DesiredState: true}

	f.apply(t, f.revision("web", "d1"), "web-1", T0)
	l.want(t, "the release's task", prod)
	f.run(t, "web-1", store.OutcomeSucceeded, T0.Add(time.Second))
	l.want(t, "an applied revision", desired)
	r := f.release(t, "web")
	wantRelease(t, r, 1, 1, store.SyncInSync, "web-1")
	if r.AppliedTaskID != "web-1" || r.LastError != "" {
		t.Fatalf("applied release: AppliedTaskID %q LastError %q", r.AppliedTaskID, r.LastError)
	}

	// Drift recorded before the next revision applies is cleared by it.
	_, err := s.RecordDrift(t.Context(), store.DriftParams{
		Tenant: f.tenant, EnvironmentID: f.env.ID, Release: "web", Revision: 1, AgentID: "a1", Now: T0.Add(2 * time.Second),
		Objects: []store.ObjectDrift{{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "shop", Name: "web", Fields: []string{"/spec/replicas"}}},
	})
	must(t, err)
	wantRelease(t, f.release(t, "web"), 1, 1, store.SyncDrifted, "web-1")
	f.apply(t, f.revision("web", "d2"), "web-2", T0.Add(3*time.Second))
	l.want(t, "the second revision's task", prod)
	f.run(t, "web-2", store.OutcomeSucceeded, T0.Add(4*time.Second))
	l.want(t, "the second applied revision", desired)
	r = f.release(t, "web")
	wantRelease(t, r, 2, 2, store.SyncInSync, "web-2")
	if r.Drift != nil || r.DriftCorrected || !r.DriftAt.IsZero() || r.AppliedTaskID != "web-2" {
		t.Fatalf("drift not cleared by an applied revision: %+v", r)
	}

	// A superseded task's end changes nothing on its release.
	f.apply(t, f.revision("web", "d3"), "web-3", T0.Add(5*time.Second))
	l.want(t, "the third revision's task", prod)
	f.apply(t, f.revision("web", "d4"), "web-4", T0.Add(6*time.Second))
	l.want(t, "the fourth revision's task", prod)
	f.run(t, "web-3", store.OutcomeSucceeded, T0.Add(7*time.Second))
	l.quiet(t, f, s, "the success of a superseded task")
	wantRelease(t, f.release(t, "web"), 4, 2, store.SyncPending, "web-4")
	f.complete(t, f.get(t, "web-4"), store.OutcomeSucceeded, false, T0.Add(8*time.Second))
	l.want(t, "the fourth applied revision", desired)
	r = f.release(t, "web")
	wantRelease(t, r, 4, 4, store.SyncInSync, "web-4")
	wantTime(t, "release UpdatedAt", r.UpdatedAt, T0.Add(8*time.Second))
}

func testReleaseSettlesOnFailure(t *testing.T, s store.Store) {
	tests := []struct {
		name string
		edit func(*store.Task)
		// end ends the release's task web-1 at T0+1m.
		end     func(t *testing.T, f *fixture)
		wantErr string
	}{
		{"a final failure report", nil, func(t *testing.T, f *fixture) {
			f.run(t, "web-1", store.OutcomeFailed, T0.Add(time.Minute))
		}, "boom 1"},
		{"a cancellation reported by the agent", nil, func(t *testing.T, f *fixture) {
			f.run(t, "web-1", store.OutcomeCancelled, T0.Add(time.Minute))
		}, "task cancelled"},
		{"a lease expiring with no attempt left", nil, func(t *testing.T, f *fixture) {
			f.claim(t, "a1", 1, T0)
			res, err := f.s.Sweep(t.Context(), T0.Add(time.Minute), minutes)
			must(t, err)
			if res.Failed != 1 {
				t.Fatalf("Sweep = %+v, want one failure", res)
			}
		}, "lease expired (attempt 1)"},
		{"a queued task past its deadline", func(task *store.Task) { task.Deadline = T0.Add(30 * time.Second) }, func(t *testing.T, f *fixture) {
			_, err := f.s.Sweep(t.Context(), T0.Add(time.Minute), minutes)
			must(t, err)
		}, "deadline exceeded"},
		{"a cancellation of the queued task", nil, func(t *testing.T, f *fixture) {
			_, err := f.s.CancelTask(t.Context(), f.tenant, "web-1", "operator:tok1", T0.Add(time.Minute))
			must(t, err)
		}, "task cancelled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tenantFixture(t, s, "t-"+strings.ReplaceAll(tt.name, " ", "-"))

			b := &builder{f: f, id: "web-1", edit: tt.edit}
			_, _, _, err := s.ApplyRelease(t.Context(), store.ApplyReleaseParams{Revision: f.revision("web", "d1"), Task: b.build, Now: T0})
			must(t, err)
			tt.end(t, f)
			r := f.release(t, "web")
			wantRelease(t, r, 1, 0, store.SyncFailed, "web-1")
			if r.LastError != tt.wantErr {
				t.Fatalf("LastError = %q, want %q", r.LastError, tt.wantErr)
			}
			wantTime(t, "release UpdatedAt", r.UpdatedAt, T0.Add(time.Minute))

			// The same content again retries the same revision.
			r, rev, created, b := f.apply(t, f.revision("web", "d1"), "web-retry", T0.Add(2*time.Minute))
			if created || rev.Revision != 1 || len(b.seen) != 1 || b.seen[0].Revision != 1 {
				t.Fatalf("retry: created %v revision %d builder saw %+v, want a new task for revision 1", created, rev.Revision, b.seen)
			}
			wantRelease(t, r, 1, 0, store.SyncPending, "web-retry")
			if r.LastError != "" {
				t.Fatalf("a retried release keeps LastError %q", r.LastError)
			}
			f.run(t, "web-retry", store.OutcomeSucceeded, T0.Add(3*time.Minute))
			wantRelease(t, f.release(t, "web"), 1, 1, store.SyncInSync, "web-retry")
		})
	}
}

func testReleaseRetryableFailure(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	b := &builder{f: f, id: "web-1", edit: func(task *store.Task) { task.MaxAttempts = 2 }}
	_, _, _, err := s.ApplyRelease(t.Context(), store.ApplyReleaseParams{Revision: f.revision("web", "d1"), Task: b.build, Now: T0})
	must(t, err)
	leased := f.claim(t, "a1", 1, T0)
	after := f.complete(t, leased[0], store.OutcomeFailed, true, T0.Add(time.Second))
	wantState(t, after, store.StateQueued, 1)
	wantRelease(t, f.release(t, "web"), 1, 0, store.SyncPending, "web-1")

	// Its lease expiring with an attempt left requeues it too.
	leased = f.claim(t, "a1", 1, T0.Add(time.Hour))
	wantIDs(t, leased, "web-1")
	_, err = s.Sweep(t.Context(), T0.Add(2*time.Hour), minutes)
	must(t, err)
	wantRelease(t, f.release(t, "web"), 1, 0, store.SyncFailed, "web-1")
}

func testDeleteRelease(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	l := listen(t, s, s, f)
	prod := store.Wakeup{Tenant: f.tenant, EnvironmentID: f.env.ID}
	desired := store.Wakeup{Tenant: f.tenant, EnvironmentID: f.env.ID, DesiredState: true}

	f.applied(t, f.revision("web", "d1"), "web-1", T0)
	l.want(t, "the release's task", prod)
	l.want(t, "the applied revision", desired)

	r, err := f.deleteRelease(t, "web", "del-1", T0.Add(time.Minute))
	must(t, err)
	wantRelease(t, r, 1, 1, store.SyncDeleting, "del-1")
	l.want(t, "the delete task", prod)
	l.want(t, "a release agents stop reconciling", desired)
	if task := f.get(t, "del-1"); task.State != store.StateQueued || string(task.Spec) != `{"delete":"web"}` {
		t.Fatalf("delete task is %s with spec %s", task.State, task.Spec)
	}
	r, err = f.deleteRelease(t, "web", "del-again", T0.Add(time.Minute))
	must(t, err)
	wantRelease(t, r, 1, 1, store.SyncDeleting, "del-1")
	_, err = s.GetTask(ctx, f.tenant, "del-again")
	wantErr(t, err, store.ErrNotFound)
	_, _, _, err = s.ApplyRelease(ctx, store.ApplyReleaseParams{Revision: f.revision("web", "d2"), Task: (&builder{f: f, id: "web-2"}).build, Now: T0})
	wantErr(t, err, store.ErrReleaseDeleting)
	desiredNames(t, f)

	// A failed delete task leaves the release failed, still on its way out.
	f.run(t, "del-1", store.OutcomeFailed, T0.Add(2*time.Minute))
	r = f.release(t, "web")
	wantRelease(t, r, 1, 1, store.SyncFailed, "del-1")
	if r.LastError != "boom 1" {
		t.Fatalf("LastError = %q", r.LastError)
	}
	_, _, _, err = s.ApplyRelease(ctx, store.ApplyReleaseParams{Revision: f.revision("web", "d1"), Task: (&builder{f: f, id: "web-2"}).build, Now: T0})
	wantErr(t, err, store.ErrReleaseDeleting)
	desiredNames(t, f)
	l.quiet(t, f, s, "a failed delete task")

	// Deleting again enqueues a new delete task, whose success removes it.
	r, err = f.deleteRelease(t, "web", "del-2", T0.Add(3*time.Minute))
	must(t, err)
	wantRelease(t, r, 1, 1, store.SyncDeleting, "del-2")
	l.want(t, "the second delete task", prod)
	l.want(t, "a release agents stop reconciling", desired)
	f.run(t, "del-2", store.OutcomeSucceeded, T0.Add(4*time.Minute))
	l.want(t, "a removed release", desired)
	_, err = s.GetRelease(ctx, f.tenant, f.env.ID, "web")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.ListReleaseRevisions(ctx, f.tenant, f.env.ID, "web")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.GetReleaseRevision(ctx, f.tenant, f.env.ID, "web", 1)
	wantErr(t, err, store.ErrNotFound)
	_, err = f.deleteRelease(t, "web", "del-3", T0.Add(5*time.Minute))
	wantErr(t, err, store.ErrNotFound)

	// The name is free again, from revision 1.
	_, rev, created, _ := f.apply(t, f.revision("web", "d9"), "web-new", T0.Add(6*time.Minute))
	if !created || rev.Revision != 1 {
		t.Fatalf("apply after removal: created %v revision %d", created, rev.Revision)
	}
	got := actionsOf(f.releaseEvents(t, "release."))
	want := []string{store.ActionReleaseApplied, store.ActionReleaseDeleted, store.ActionReleaseDeleted, store.ActionReleaseRemoved, store.ActionReleaseApplied}
	if !slices.Equal(got, want) {
		t.Fatalf("release events %v, want %v", got, want)
	}
	noSecretsAudited(t, f)
}

// desiredNames fails unless the desired releases of f.env are names, with
// their applied revisions.
func desiredNames(t *testing.T, f *fixture, names ...string) []store.DesiredRelease {
	t.Helper()
	got, err := f.s.ListDesiredReleases(t.Context(), f.tenant, f.env.ID)
	must(t, err)
	var g []string
	for _, d := range got {
		g = append(g, d.Release.Name)
		if d.Revision.Release != d.Release.Name || d.Revision.Revision != d.Release.AppliedRevision {
			t.Fatalf("desired release %s at applied revision %d carries revision %s/%d",
				d.Release.Name, d.Release.AppliedRevision, d.Revision.Release, d.Revision.Revision)
		}
	}
	if !slices.Equal(g, names) {
		t.Fatalf("desired releases = %v, want %v", g, names)
	}
	return got
}

func testDesiredReleases(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	desiredNames(t, f)

	f.applied(t, f.revision("web", "w1"), "web-1", T0)
	f.apply(t, f.revision("web", "w2"), "web-2", T0.Add(time.Second)) // not applied yet
	f.apply(t, f.revision("api", "a1"), "api-1", T0)                  // never applied
	f.applied(t, f.revision("old", "o1"), "old-1", T0)
	_, err := f.deleteRelease(t, "old", "old-del", T0.Add(time.Second))
	must(t, err)
	dev := f.revision("dev", "x1")
	dev.EnvironmentID = f.env2.ID
	f.apply(t, dev, "dev-1", T0)

	got := desiredNames(t, f, "web")
	want := f.revision("web", "w1")
	want.Revision = 1
	want.CreatedAt = T0
	sameRevision(t, got[0].Revision, want)
	if got[0].Release.Revision != 2 || got[0].Release.Sync != store.SyncPending {
		t.Fatalf("desired release = %+v, want its newest revision 2 pending", got[0].Release)
	}
}

func testRecordDrift(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	f.applied(t, f.revision("web", "d1"), "web-1", T0)
	objects := []store.ObjectDrift{
		{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "shop", Name: "web", Fields: []string{"/spec/replicas", "/spec/template"}},
		{Version: "v1", Kind: "ConfigMap", Namespace: "shop", Name: "web-config", Deleted: true},
	}
	tests := []struct {
		name       string
		revision   int64
		objects    []store.ObjectDrift
		corrected  bool
		sync       store.ReleaseSync
		drift      []store.ObjectDrift
		correctedA bool
		action     string
	}{
		{"a detected drift marks the release drifted", 1, objects, false, store.SyncDrifted, objects, false, store.ActionReleaseDriftDetected},
		{"a report for a stale revision changes nothing", 7, nil, false, store.SyncDrifted, objects, false, ""},
		{"a corrected drift is in sync and keeps the drift", 1, objects[:1], true, store.SyncInSync, objects[:1], true, store.ActionReleaseDriftCorrected},
		{"an empty report is in sync and clears the drift", 1, nil, false, store.SyncInSync, nil, false, store.ActionReleaseInSync},
	}
	for i, tt := range tests {
		now := T0.Add(time.Duration(i+1) * time.Minute)
		before := f.release(t, "web")
		events := len(f.events(t))
		r, err := s.RecordDrift(ctx, store.DriftParams{
			Tenant: f.tenant, EnvironmentID: f.env.ID, Release: "web", Revision: tt.revision,
			Objects: tt.objects, Corrected: tt.corrected, AgentID: "a1", Now: now,
		})
		must(t, err)
		stored := f.release(t, "web")
		if !reflect.DeepEqual(r, stored) {
			t.Fatalf("%s: RecordDrift returned\n%+v\nstored\n%+v", tt.name, r, stored)
		}
		if r.Sync != tt.sync || !reflect.DeepEqual(r.Drift, tt.drift) || r.DriftCorrected != tt.correctedA {
			t.Fatalf("%s: sync %s drift %+v corrected %v, want %s %+v %v", tt.name, r.Sync, r.Drift, r.DriftCorrected, tt.sync, tt.drift, tt.correctedA)
		}
		added := f.events(t)[events:]
		if tt.action == "" {
			if len(added) != 0 || !reflect.DeepEqual(before, r) {
				t.Fatalf("%s: changed the release or appended %v", tt.name, actionsOf(added))
			}
			continue
		}
		wantTime(t, tt.name+": DriftAt", r.DriftAt, now)
		if len(added) != 1 || added[0].Action != tt.action || added[0].Actor != "agent:a1" || added[0].Subject != "web" ||
			!strings.Contains(added[0].Details, `"release":"web"`) || !strings.Contains(added[0].Details, `"revision":1`) {
			t.Fatalf("%s: appended %+v, want one %s", tt.name, added, tt.action)
		}
	}
	_, err := s.RecordDrift(ctx, store.DriftParams{Tenant: f.tenant, EnvironmentID: f.env.ID, Release: "nope", Revision: 1, Now: T0})
	wantErr(t, err, store.ErrNotFound)
}

func testReleaseTenants(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	must(t, s.CreateTenant(ctx, store.Tenant{Name: "globex", CreatedAt: T0}, "operator:root"))
	must(t, s.CreateEnvironment(ctx, store.Environment{ID: "g1", Tenant: "globex", Name: "prod", CreatedAt: T0}, "operator:root"))
	f.applied(t, f.revision("web", "d1"), "web-1", T0)
	must(t, s.RegisterEnvironmentKeys(ctx, f.tenant, f.env.ID, []store.EnvironmentKey{{Version: 1, Recipient: "age1acme", Fingerprint: "fp1"}}, "agent:a1", T0))
	_, _, err := s.PutSecretVersion(ctx, f.secret("app", "db"), f.task("secret-1"), "operator:tok1")
	must(t, err)
	before := f.release(t, "web")

	const g = "globex"
	env := f.env.ID
	_, err = s.GetRelease(ctx, g, env, "web")
	wantErr(t, err, store.ErrNotFound)
	list, err := s.ListReleases(ctx, g, "")
	must(t, err)
	if len(list) != 0 {
		t.Fatalf("globex lists %d releases of acme", len(list))
	}
	_, err = s.ListReleaseRevisions(ctx, g, env, "web")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.GetReleaseRevision(ctx, g, env, "web", 1)
	wantErr(t, err, store.ErrNotFound)
	desired, err := s.ListDesiredReleases(ctx, g, env)
	must(t, err)
	if len(desired) != 0 {
		t.Fatalf("globex sees %d desired releases of acme", len(desired))
	}
	rev := f.revision("web", "evil")
	rev.Tenant = g
	_, _, _, err = s.ApplyRelease(ctx, store.ApplyReleaseParams{Revision: rev, Task: func(store.ReleaseRevision) (store.Task, error) {
		task := f.task("evil")
		task.Tenant = g
		return task, nil
	}, Now: T0})
	wantErr(t, err, store.ErrNotFound)
	_, err = s.DeleteRelease(ctx, store.DeleteReleaseParams{Tenant: g, EnvironmentID: env, Name: "web", Actor: "operator:g",
		Task: func(store.Release) (store.Task, error) {
			return store.Task{ID: "evil-del", Tenant: g, EnvironmentID: env}, nil
		}, Now: T0})
	wantErr(t, err, store.ErrNotFound)
	_, err = s.RecordDrift(ctx, store.DriftParams{Tenant: g, EnvironmentID: env, Release: "web", Revision: 1,
		Objects: []store.ObjectDrift{{Version: "v1", Kind: "Pod", Name: "x"}}, Now: T0})
	wantErr(t, err, store.ErrNotFound)
	active, failed, err := s.TaskCounts(ctx, g, env, time.Time{})
	must(t, err)
	if active != 0 || failed != 0 {
		t.Fatalf("globex counts %d active and %d failed tasks of acme", active, failed)
	}
	if !reflect.DeepEqual(f.release(t, "web"), before) {
		t.Fatal("another tenant changed the release")
	}

	wantErr(t, s.RegisterEnvironmentKeys(ctx, g, env, []store.EnvironmentKey{{Version: 2, Recipient: "age1evil"}}, "operator:g", T0), store.ErrNotFound)
	_, err = s.ListEnvironmentKeys(ctx, g, env)
	wantErr(t, err, store.ErrNotFound)
	sv := f.secret("app", "db")
	sv.Tenant = g
	task := f.task("evil-secret")
	task.Tenant = g
	_, _, err = s.PutSecretVersion(ctx, sv, task, "operator:g")
	wantErr(t, err, store.ErrNotFound)
	secrets, err := s.ListSecrets(ctx, g, env)
	must(t, err)
	history, err := s.SecretHistory(ctx, g, env, "app", "db")
	must(t, err)
	if len(secrets) != 0 || len(history) != 0 {
		t.Fatalf("globex sees %d secrets and %d versions of acme", len(secrets), len(history))
	}
	keys, err := s.ListEnvironmentKeys(ctx, f.tenant, env)
	must(t, err)
	if len(keys) != 1 || keys[0].Recipient != "age1acme" {
		t.Fatalf("acme keys = %+v", keys)
	}
	gEvents, err := s.ListAudit(ctx, g, 0, 100, "")
	must(t, err)
	if len(gEvents) != 2 {
		t.Fatalf("globex's refused calls appended %v", actionsOf(gEvents))
	}
}

func testTaskCounts(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	f.enqueue(t, f.task("old-fail"))
	f.enqueue(t, f.task("new-fail"))
	f.enqueue(t, f.task("done"))
	leased := f.claim(t, "a1", 3, T0)
	f.complete(t, leased[0], store.OutcomeFailed, false, T0.Add(time.Minute))
	f.complete(t, leased[1], store.OutcomeFailed, false, T0.Add(2*time.Hour))
	f.complete(t, leased[2], store.OutcomeSucceeded, false, T0.Add(2*time.Hour))
	f.enqueue(t, f.task("running"))
	f.enqueue(t, f.task("waiting"))
	wantIDs(t, f.claim(t, "a1", 1, T0.Add(3*time.Hour)), "running")
	other := f.task("elsewhere")
	other.EnvironmentID = f.env2.ID
	f.enqueue(t, other)

	tests := []struct {
		name                string
		since               time.Time
		wantActive, wantFai int
	}{
		{"every failure since the start", T0, 2, 2},
		{"only failures since an hour in", T0.Add(time.Hour), 2, 1},
		{"a failure exactly at the cutoff counts", T0.Add(2 * time.Hour), 2, 1},
		{"no failure after the last", T0.Add(3 * time.Hour), 2, 0},
	}
	for _, tt := range tests {
		active, failed, err := s.TaskCounts(t.Context(), f.tenant, f.env.ID, tt.since)
		must(t, err)
		if active != tt.wantActive || failed != tt.wantFai {
			t.Fatalf("%s: TaskCounts = %d active, %d failed, want %d, %d", tt.name, active, failed, tt.wantActive, tt.wantFai)
		}
	}
}

// ConcurrentReleases applies revisions of one release and versions of one
// secret from several goroutines, spread over stores (replicas of one
// database), while another completes their tasks as they come. It fails
// unless revisions and versions are numbered 1..n without gap or
// collision, and the release ends applied at its newest revision by the
// task carrying it.
func ConcurrentReleases(t *testing.T, stores []store.Store) {
	f := newFixture(t, stores[0])
	const workers, each = 6, 4
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var (
		mu  sync.Mutex
		seq int
	)
	taskFor := func(prefix string) store.Task {
		mu.Lock()
		defer mu.Unlock()
		seq++
		return f.task(fmt.Sprintf("%s-%03d", prefix, seq))
	}
	g, gctx := errgroup.WithContext(ctx)
	for w := range workers {
		s := stores[w%len(stores)]
		g.Go(func() error {
			for i := range each {
				rev := f.revision("web", fmt.Sprintf("d-%d-%d", w, i))
				task := taskFor("web")
				if _, _, _, err := s.ApplyRelease(gctx, store.ApplyReleaseParams{Revision: rev, Now: T0,
					Task: func(store.ReleaseRevision) (store.Task, error) { return task, nil }}); err != nil {
					return err
				}
				if _, _, err := s.PutSecretVersion(gctx, f.secret("app", "db"), taskFor("secret"), "operator:tok1"); err != nil {
					return err
				}
			}
			return nil
		})
	}
	applied := make(chan struct{})
	var drain sync.WaitGroup
	drain.Go(func() {
		s := stores[len(stores)-1]
		for {
			select {
			case <-applied:
				return
			case <-ctx.Done():
				return
			default:
			}
			got, err := s.ClaimTasks(ctx, store.ClaimParams{Tenant: f.tenant, EnvironmentID: f.env.ID, AgentID: "a1", Max: 5, LeaseDuration: time.Hour, Now: T0})
			if err != nil {
				t.Error(err)
				return
			}
			if len(got) == 0 {
				time.Sleep(time.Millisecond)
			}
			for _, task := range got {
				if _, err := s.CompleteTask(ctx, store.CompleteParams{Tenant: f.tenant, TaskID: task.ID, Epoch: task.Attempt, AgentID: "a1",
					Outcome: store.OutcomeSucceeded, Now: T0}); err != nil {
					t.Error(err)
					return
				}
			}
		}
	})
	err := g.Wait()
	close(applied)
	drain.Wait()
	must(t, err)
	if t.Failed() {
		t.FailNow()
	}
	for _, task := range f.claim(t, "a1", 1000, T0) {
		f.complete(t, task, store.OutcomeSucceeded, false, T0)
	}

	revs, err := f.s.ListReleaseRevisions(t.Context(), f.tenant, f.env.ID, "web")
	must(t, err)
	history, err := f.s.SecretHistory(t.Context(), f.tenant, f.env.ID, "app", "db")
	must(t, err)
	const n = workers * each
	if len(revs) != n || len(history) != n {
		t.Fatalf("%d revisions and %d secret versions, want %d of each", len(revs), len(history), n)
	}
	for i := range n {
		if revs[i].Revision != int64(n-i) || history[i].Version != int64(n-i) {
			t.Fatalf("revision %d and version %d at position %d, want %d", revs[i].Revision, history[i].Version, i, n-i)
		}
	}
	r := f.release(t, "web")
	wantRelease(t, r, n, n, store.SyncInSync, r.TaskID)
	if r.AppliedTaskID != r.TaskID {
		t.Fatalf("applied by %s, but revision %d is carried by %s", r.AppliedTaskID, n, r.TaskID)
	}
	must(t, audit.Verify(f.events(t)))
}
