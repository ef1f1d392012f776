package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/store"
)

var wakeupScenarios = []scenario{
	{"a listener receives the wake-ups of enqueues, reports, cancellations and retries", testWakeups},
	{"a report wakes the environment only when it can make work claimable", testReportWakeups},
	{"a listener stops when its context ends", testListenStops},
}

// listener collects the wake-ups of one ListenWakeups call.
type listener struct {
	ch chan store.Wakeup
}

// listen starts ListenWakeups on s and waits until it receives wake-ups
// that writer emits: it enqueues probe tasks into f.env2 until one is
// heard, since a listener has no other way to say it is ready.
func listen(t *testing.T, s, writer store.Store, f *fixture) *listener {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	l := &listener{ch: make(chan store.Wakeup, 1000)}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.ListenWakeups(ctx, func(w store.Wakeup) { l.ch <- w }); err != nil {
			t.Errorf("ListenWakeups: %v", err)
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	deadline := time.Now().Add(waitTimeout)
	for i := 0; ; i++ {
		probe := f.task(fmt.Sprintf("probe-%d", i))
		probe.EnvironmentID = f.env2.ID
		if _, _, err := writer.EnqueueTask(t.Context(), probe, "operator:probe"); err != nil {
			t.Fatal(err)
		}
		select {
		case w := <-l.ch:
			if w.EnvironmentID != f.env2.ID {
				t.Fatalf("first wake-up %+v is not the probe's", w)
			}
			return l
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the listener never heard a probe enqueue")
		}
	}
}

func (l *listener) next(t *testing.T, what string) store.Wakeup {
	t.Helper()
	select {
	case w := <-l.ch:
		return w
	case <-time.After(waitTimeout):
		t.Fatalf("no wake-up for %s", what)
		return store.Wakeup{}
	}
}

// want fails unless the next wake-up is w.
func (l *listener) want(t *testing.T, what string, w store.Wakeup) {
	t.Helper()
	if got := l.next(t, what); got != w {
		t.Fatalf("wake-up for %s = %+v, want %+v", what, got, w)
	}
}

// quiet proves that nothing was emitted since the last wake-up: the store
// emits in commit order, so a marker enqueued now must come next.
func (l *listener) quiet(t *testing.T, f *fixture, writer store.Store, after string) {
	t.Helper()
	f.next += time.Microsecond
	marker := f.task(fmt.Sprintf("marker-%d", int64(f.next)))
	marker.EnvironmentID = f.env2.ID
	if _, _, err := writer.EnqueueTask(t.Context(), marker, "operator:probe"); err != nil {
		t.Fatal(err)
	}
	l.want(t, "the marker after "+after+" (anything else was emitted by it)", store.Wakeup{Tenant: f.tenant, EnvironmentID: f.env2.ID})
}

func testWakeups(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	l := listen(t, s, s, f)
	prod := store.Wakeup{Tenant: f.tenant, EnvironmentID: f.env.ID}

	t1 := f.task("t1")
	t1.MaxAttempts = 3
	f.enqueue(t, t1)
	l.want(t, "an enqueue", prod)
	_, created, err := s.EnqueueTask(ctx, t1, "operator:tok1")
	must(t, err)
	if created {
		t.Fatal("repeat enqueue created a task")
	}
	l.quiet(t, f, s, "a repeated enqueue")

	leased := f.claim(t, "a1", 1, T0)
	l.quiet(t, f, s, "a claim")
	f.complete(t, leased[0], store.OutcomeFailed, true, T0)
	l.want(t, "a report", prod)

	// The retry becomes runnable at T0+1m.
	_, err = s.Sweep(ctx, T0.Add(30*time.Second), minutes)
	must(t, err)
	l.quiet(t, f, s, "a sweep before the retry is due")
	_, err = s.Sweep(ctx, T0.Add(2*time.Minute), minutes)
	must(t, err)
	l.want(t, "a retry that became runnable", prod)
	_, err = s.Sweep(ctx, T0.Add(3*time.Minute), minutes)
	must(t, err)
	l.quiet(t, f, s, "a second sweep after the retry was due")

	leased = f.claim(t, "a1", 1, T0.Add(3*time.Minute))
	wantIDs(t, leased, "t1")
	_, err = s.CancelTask(ctx, f.tenant, "t1", "operator:tok1", T0.Add(3*time.Minute))
	must(t, err)
	l.want(t, "a cancellation of a leased task", store.Wakeup{Tenant: f.tenant, EnvironmentID: f.env.ID, CancelTaskID: "t1"})

	t2 := f.task("t2")
	t2.MaxAttempts = 2
	f.enqueue(t, t2)
	l.want(t, "a second enqueue", prod)
	wantIDs(t, f.claim(t, "a2", 1, T0.Add(3*time.Minute)), "t2")
	// t1's lease ends in its cancellation (no wake-up), t2's in a retry.
	res, err := s.Sweep(ctx, T0.Add(5*time.Minute), func(int64) time.Duration { return time.Hour })
	must(t, err)
	if res != (store.SweepResult{Requeued: 1, Cancelled: 1}) {
		t.Fatalf("Sweep = %+v", res)
	}
	l.want(t, "a requeue by sweep", prod)
	l.quiet(t, f, s, "the requeue")
}

func testReportWakeups(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	l := listen(t, s, s, f)
	prod := store.Wakeup{Tenant: f.tenant, EnvironmentID: f.env.ID}
	report := func(id string, keys []string, outcome store.Outcome) {
		t.Helper()
		f.enqueue(t, f.task(id, keys...))
		l.want(t, "the enqueue of "+id, prod)
		wantIDs(t, f.claim(t, "a1", 1, T0), id)
		f.complete(t, f.get(t, id), outcome, false, T0)
	}

	report("plain-ok", nil, store.OutcomeSucceeded)
	l.quiet(t, f, s, "a success without conflict keys")
	report("plain-failed", nil, store.OutcomeFailed)
	l.quiet(t, f, s, "a final failure without conflict keys")
	report("keyed-ok", []string{"helm/ns/a"}, store.OutcomeSucceeded)
	l.want(t, "a success that frees a conflict key", prod)
	report("keyed-failed", []string{"helm/ns/a"}, store.OutcomeFailed)
	l.want(t, "a final failure that frees a conflict key", prod)
	l.quiet(t, f, s, "the keyed reports")
}

func testListenStops(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.ListenWakeups(ctx, func(store.Wakeup) {}) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ListenWakeups after cancel = %v, want nil", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("ListenWakeups did not return after its context ended")
	}
}

// Wakeups checks that a listener on one store hears the enqueues made
// through another store on the same database (another hub replica).
func Wakeups(t *testing.T, listenOn, writeOn store.Store) {
	f := newFixture(t, writeOn)
	l := listen(t, listenOn, writeOn, f)
	if _, _, err := writeOn.EnqueueTask(t.Context(), f.task("t1"), "operator:tok1"); err != nil {
		t.Fatal(err)
	}
	l.want(t, "an enqueue on another replica", store.Wakeup{Tenant: f.tenant, EnvironmentID: f.env.ID})
}
