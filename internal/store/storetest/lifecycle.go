package storetest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/audit"
	"github.com/outposthq/outpost/internal/store"
)

var lifecycleScenarios = []scenario{
	{"a retryable failure is retried with backoff until attempts run out", testRetries},
	{"a failure that is not retryable fails the task at once", testNonRetryable},
	{"cancelling a queued task cancels it at once", testCancelQueued},
	{"cancelling a leased task asks its agent to stop", testCancelLeased},
	{"a leased task whose cancellation is pending is cancelled when its lease expires", testCancelLeaseExpired},
	{"cancelling a finished task leaves it as it is", testCancelFinished},
	{"a queued task past its deadline fails on claim and on sweep", testDeadlineQueued},
	{"a leased task past its deadline fails without retry when its lease expires", testDeadlineLeased},
	{"sweep requeues expired leases with backoff and fails the last attempt", testSweepLeaseExpiry},
	{"a renewed lease outlives the sweep of the original lease", testRenew},
	{"extending leases gives every agent time to reconnect", testExtendLeases},
	{"finished tasks are deleted only after the cutoff", testDeleteFinished},
}

func testRetries(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	task := f.task("t1")
	task.MaxAttempts = 3
	f.enqueue(t, task)

	now := T0
	for attempt := int64(1); attempt <= 3; attempt++ {
		got := f.claim(t, "a1", 1, now)
		wantIDs(t, got, "t1")
		wantState(t, got[0], store.StateLeased, attempt)
		now = now.Add(10 * time.Second)
		after := f.complete(t, got[0], store.OutcomeFailed, true, now)
		if after.Error != errorText(store.OutcomeFailed, attempt) || string(after.Result) == "" {
			t.Fatalf("attempt %d: error %q result %q, want the attempt's", attempt, after.Error, after.Result)
		}
		if attempt == 3 {
			wantState(t, after, store.StateFailed, 3)
			wantTime(t, "FinishedAt", after.FinishedAt, now)
			break
		}
		wantState(t, after, store.StateQueued, attempt)
		wantTime(t, "NotBefore", after.NotBefore, now.Add(minutes(attempt)))
		if !after.FinishedAt.IsZero() || !after.LeaseExpiresAt.IsZero() {
			t.Fatalf("a retried task has FinishedAt %v, LeaseExpiresAt %v", after.FinishedAt, after.LeaseExpiresAt)
		}
		sameTask(t, f.get(t, "t1"), after)
		wantIDs(t, f.claim(t, "a1", 1, after.NotBefore.Add(-time.Microsecond)))
		now = after.NotBefore
	}
	var retries []string
	for _, e := range f.events(t) {
		if e.Action == audit.ActionTaskFailed {
			retries = append(retries, e.Details)
		}
	}
	if len(retries) != 3 {
		t.Fatalf("%d agent.task_failed events, want 3", len(retries))
	}
	for i, want := range []string{`"retry":true`, `"retry":true`, `"retry":false`} {
		if !strings.Contains(retries[i], want) || !strings.Contains(retries[i], `"epoch":`) || !strings.Contains(retries[i], "boom") {
			t.Fatalf("event %d details %s, want %s with epoch and error", i, retries[i], want)
		}
	}
}

func testNonRetryable(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	task := f.task("t1")
	task.MaxAttempts = 5
	f.enqueue(t, task)
	got := f.claim(t, "a1", 1, T0)
	after := f.complete(t, got[0], store.OutcomeFailed, false, T0.Add(time.Second))
	wantState(t, after, store.StateFailed, 1)
	wantTime(t, "FinishedAt", after.FinishedAt, T0.Add(time.Second))
	wantIDs(t, f.claim(t, "a1", 1, T0.Add(time.Hour)))
}

func testCancelQueued(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	f.enqueue(t, f.task("t1", "k"))
	f.enqueue(t, f.task("t2", "k"))
	got, err := s.CancelTask(t.Context(), f.tenant, "t1", "operator:tok1", T0.Add(time.Second))
	must(t, err)
	wantState(t, got, store.StateCancelled, 0)
	wantTime(t, "FinishedAt", got.FinishedAt, T0.Add(time.Second))
	sameTask(t, f.get(t, "t1"), got)
	wantIDs(t, f.claim(t, "a1", 5, T0.Add(2*time.Second)), "t2")
	_, err = s.CancelTask(t.Context(), f.tenant, "missing", "operator:tok1", T0)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.CancelTask(t.Context(), "globex", "t1", "operator:tok1", T0)
	wantErr(t, err, store.ErrNotFound)
}

func testCancelLeased(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	f.enqueue(t, f.task("t1", "k"))
	f.enqueue(t, f.task("t2", "k"))
	leased := f.claim(t, "a1", 1, T0)[0]

	got, err := s.CancelTask(ctx, f.tenant, "t1", "operator:tok1", T0.Add(time.Second))
	must(t, err)
	wantState(t, got, store.StateLeased, 1)
	if !got.CancelRequested {
		t.Fatal("CancelRequested = false on a leased task after CancelTask")
	}
	// The agent learns it on renewal, and the key stays held until it stops.
	renewed, err := s.RenewLease(ctx, store.RenewParams{Tenant: f.tenant, TaskID: "t1", Epoch: 1, AgentID: "a1", LeaseDuration: time.Minute, Now: T0.Add(2 * time.Second)})
	must(t, err)
	if !renewed.CancelRequested {
		t.Fatal("RenewLease hides the pending cancellation")
	}
	wantIDs(t, f.claim(t, "a2", 5, T0.Add(3*time.Second)))

	done, err := s.CompleteTask(ctx, store.CompleteParams{
		Tenant: f.tenant, TaskID: "t1", Epoch: leased.Attempt, AgentID: "a1", Outcome: store.OutcomeCancelled, Now: T0.Add(4 * time.Second),
	})
	must(t, err)
	wantState(t, done, store.StateCancelled, 1)
	wantTime(t, "FinishedAt", done.FinishedAt, T0.Add(4*time.Second))
	wantIDs(t, f.claim(t, "a2", 5, T0.Add(5*time.Second)), "t2")

	var actions []string
	for _, e := range f.events(t) {
		if e.Subject == "t1" {
			actions = append(actions, e.Action)
		}
	}
	want := []string{audit.ActionTaskEnqueued, audit.ActionTaskClaimed, audit.ActionTaskCancelRequested, audit.ActionTaskCancelled}
	if !slices.Equal(actions, want) {
		t.Fatalf("t1 events %v, want %v", actions, want)
	}
}

func testCancelLeaseExpired(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	task := f.task("t1")
	task.MaxAttempts = 3
	f.enqueue(t, task)
	f.claim(t, "a1", 1, T0)
	_, err := s.CancelTask(t.Context(), f.tenant, "t1", "operator:tok1", T0.Add(time.Second))
	must(t, err)
	res, err := s.Sweep(t.Context(), T0.Add(time.Minute), minutes)
	must(t, err)
	if res != (store.SweepResult{Cancelled: 1}) {
		t.Fatalf("Sweep = %+v, want one cancelled", res)
	}
	got := f.get(t, "t1")
	wantState(t, got, store.StateCancelled, 1)
	wantTime(t, "FinishedAt", got.FinishedAt, T0.Add(time.Minute))
}

func testCancelFinished(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	f.enqueue(t, f.task("t1"))
	done := f.complete(t, f.claim(t, "a1", 1, T0)[0], store.OutcomeSucceeded, false, T0.Add(time.Second))
	before := len(f.events(t))
	got, err := s.CancelTask(t.Context(), f.tenant, "t1", "operator:tok1", T0.Add(time.Hour))
	must(t, err)
	sameTask(t, got, done)
	sameTask(t, f.get(t, "t1"), done)
	if after := len(f.events(t)); after != before {
		t.Fatalf("cancelling a finished task appended %d events", after-before)
	}
}

func testDeadlineQueued(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	a := f.task("a", "k")
	a.Deadline = T0.Add(time.Minute)
	f.enqueue(t, a)
	f.enqueue(t, f.task("b", "k"))
	c := f.task("c")
	c.Deadline = T0.Add(time.Minute)
	c.EnvironmentID = f.env2.ID
	f.enqueue(t, c)

	// a is failed on the way and no longer holds k against b.
	wantIDs(t, f.claim(t, "a1", 5, T0.Add(2*time.Minute)), "b")
	got := f.get(t, "a")
	wantState(t, got, store.StateFailed, 0)
	if got.Error != "deadline exceeded" {
		t.Fatalf("error = %q", got.Error)
	}
	wantTime(t, "FinishedAt", got.FinishedAt, T0.Add(2*time.Minute))

	res, err := s.Sweep(t.Context(), T0.Add(2*time.Minute), minutes)
	must(t, err)
	if res != (store.SweepResult{Failed: 1}) {
		t.Fatalf("Sweep = %+v, want one failed", res)
	}
	wantState(t, f.get(t, "c"), store.StateFailed, 0)
	exceeded := 0
	for _, e := range f.events(t) {
		if e.Action == audit.ActionTaskDeadlineExceeded {
			exceeded++
		}
	}
	if exceeded != 2 {
		t.Fatalf("%d task.deadline_exceeded events, want 2", exceeded)
	}
}

func testDeadlineLeased(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	for _, id := range []string{"t1", "t2"} {
		task := f.task(id)
		task.MaxAttempts = 3
		task.Deadline = T0.Add(time.Minute)
		f.enqueue(t, task)
	}
	got, err := s.ClaimTasks(ctx, store.ClaimParams{Tenant: f.tenant, EnvironmentID: f.env.ID, AgentID: "a1", Max: 2, LeaseDuration: 5 * time.Minute, Now: T0})
	must(t, err)
	wantIDs(t, got, "t1", "t2")

	res, err := s.Sweep(ctx, T0.Add(2*time.Minute), minutes)
	must(t, err)
	if res != (store.SweepResult{}) {
		t.Fatalf("Sweep before the lease expired = %+v, want nothing", res)
	}
	// A retryable failure past the deadline is not retried.
	failed := f.complete(t, got[1], store.OutcomeFailed, true, T0.Add(3*time.Minute))
	wantState(t, failed, store.StateFailed, 1)

	res, err = s.Sweep(ctx, T0.Add(5*time.Minute), minutes)
	must(t, err)
	if res != (store.SweepResult{Failed: 1}) {
		t.Fatalf("Sweep = %+v, want one failed", res)
	}
	expired := f.get(t, "t1")
	wantState(t, expired, store.StateFailed, 1)
	if expired.Error != "deadline exceeded" {
		t.Fatalf("error = %q, want deadline exceeded", expired.Error)
	}
}

func testSweepLeaseExpiry(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	task := f.task("t1")
	task.MaxAttempts = 2
	f.enqueue(t, task)
	f.claim(t, "a1", 1, T0)

	res, err := s.Sweep(ctx, T0.Add(59*time.Second), minutes)
	must(t, err)
	if res != (store.SweepResult{}) {
		t.Fatalf("Sweep before expiry = %+v", res)
	}
	res, err = s.Sweep(ctx, T0.Add(time.Minute), minutes)
	must(t, err)
	if res != (store.SweepResult{Requeued: 1}) {
		t.Fatalf("Sweep = %+v, want one requeued", res)
	}
	got := f.get(t, "t1")
	wantState(t, got, store.StateQueued, 1)
	wantTime(t, "NotBefore", got.NotBefore, T0.Add(2*time.Minute))
	if got.Error != "lease expired (attempt 1)" || !got.LeaseExpiresAt.IsZero() {
		t.Fatalf("after expiry: error %q, lease %v", got.Error, got.LeaseExpiresAt)
	}

	wantIDs(t, f.claim(t, "a2", 1, T0.Add(2*time.Minute)), "t1")
	res, err = s.Sweep(ctx, T0.Add(3*time.Minute), minutes)
	must(t, err)
	if res != (store.SweepResult{Failed: 1}) {
		t.Fatalf("Sweep = %+v, want one failed", res)
	}
	got = f.get(t, "t1")
	wantState(t, got, store.StateFailed, 2)
	if got.Error != "lease expired (attempt 2)" {
		t.Fatalf("error = %q", got.Error)
	}
	wantTime(t, "FinishedAt", got.FinishedAt, T0.Add(3*time.Minute))
	// The late agent's report is refused.
	_, err = s.CompleteTask(ctx, store.CompleteParams{Tenant: f.tenant, TaskID: "t1", Epoch: 1, AgentID: "a1", Outcome: store.OutcomeSucceeded, Now: T0.Add(4 * time.Minute)})
	wantErr(t, err, store.ErrStaleEpoch)

	expired := 0
	for _, e := range f.events(t) {
		if e.Action == audit.ActionTaskLeaseExpired {
			expired++
		}
	}
	if expired != 2 {
		t.Fatalf("%d task.lease_expired events, want 2", expired)
	}
}

func testRenew(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	f.enqueue(t, f.task("t1"))
	f.claim(t, "a1", 1, T0)
	got, err := s.RenewLease(ctx, store.RenewParams{Tenant: f.tenant, TaskID: "t1", Epoch: 1, AgentID: "a1", LeaseDuration: time.Minute, Now: T0.Add(50 * time.Second)})
	must(t, err)
	wantTime(t, "LeaseExpiresAt", got.LeaseExpiresAt, T0.Add(110*time.Second))
	res, err := s.Sweep(ctx, T0.Add(70*time.Second), minutes)
	must(t, err)
	if res != (store.SweepResult{}) {
		t.Fatalf("Sweep = %+v, want nothing", res)
	}
	sameTask(t, f.get(t, "t1"), got)
	_, err = s.RenewLease(ctx, store.RenewParams{Tenant: f.tenant, TaskID: "missing", Epoch: 1, AgentID: "a1", LeaseDuration: time.Minute, Now: T0})
	wantErr(t, err, store.ErrNotFound)
}

func testExtendLeases(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	f.enqueue(t, f.task("short"))
	f.enqueue(t, f.task("long"))
	f.enqueue(t, f.task("queued"))
	f.claim(t, "a1", 1, T0)
	_, err := s.ClaimTasks(ctx, store.ClaimParams{Tenant: f.tenant, EnvironmentID: f.env.ID, AgentID: "a1", Max: 1, LeaseDuration: 10 * time.Minute, Now: T0})
	must(t, err)

	n, err := s.ExtendLeases(ctx, T0.Add(5*time.Minute))
	must(t, err)
	if n != 1 {
		t.Fatalf("ExtendLeases = %d, want 1", n)
	}
	wantTime(t, "short lease", f.get(t, "short").LeaseExpiresAt, T0.Add(5*time.Minute))
	wantTime(t, "long lease", f.get(t, "long").LeaseExpiresAt, T0.Add(10*time.Minute))
	if !f.get(t, "queued").LeaseExpiresAt.IsZero() {
		t.Fatal("ExtendLeases gave a queued task a lease")
	}
	res, err := s.Sweep(ctx, T0.Add(2*time.Minute), minutes)
	must(t, err)
	if res != (store.SweepResult{}) {
		t.Fatalf("Sweep = %+v after extension, want nothing", res)
	}
}

func testDeleteFinished(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	f.enqueue(t, f.task("done"))
	f.enqueue(t, f.task("queued"))
	f.complete(t, f.claim(t, "a1", 1, T0)[0], store.OutcomeSucceeded, false, T0.Add(time.Minute))

	n, err := s.DeleteFinishedTasks(ctx, T0.Add(time.Minute))
	must(t, err)
	if n != 0 {
		t.Fatalf("DeleteFinishedTasks at the finish instant = %d, want 0", n)
	}
	n, err = s.DeleteFinishedTasks(ctx, T0.Add(time.Hour))
	must(t, err)
	if n != 1 {
		t.Fatalf("DeleteFinishedTasks = %d, want 1", n)
	}
	_, err = s.GetTask(ctx, f.tenant, "done")
	wantErr(t, err, store.ErrNotFound)
	wantState(t, f.get(t, "queued"), store.StateQueued, 0)
}
