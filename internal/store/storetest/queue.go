package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/audit"
	"github.com/outposthq/outpost/internal/store"
)

var queueScenarios = []scenario{
	{"an enqueue repeating a task id returns the stored task", testEnqueueIdempotent},
	{"an enqueue reusing a task id for another request is refused", testEnqueueMismatch},
	{"an enqueue into an environment of another tenant is not found", testEnqueueForeignEnvironment},
	{"a claim leases oldest first and never two tasks sharing a conflict key", testClaimFIFO},
	{"a queued task waiting for its retry blocks newer tasks sharing its key", testClaimBlockedByBackoff},
	{"a claim only takes the kinds the agent runs", testClaimKinds},
	{"each claim increments the attempt epoch and sets the lease", testClaimEpochs},
	{"a report or renewal at a stale epoch is refused and changes nothing", testStaleEpoch},
	{"a repeated report is harmless", testDuplicateReport},
	{"tasks are listed newest first across pages", testListTasks},
	{"stats count queued and leased tasks", testStats},
	{"concurrent claimers never double-lease nor run two tasks sharing a key", func(t *testing.T, s store.Store) {
		ConcurrentClaims(t, []store.Store{s})
	}},
}

func testEnqueueIdempotent(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	want := f.task("t1", "helm/ns/web")
	want.Artifacts = []string{"sha256:" + fmt.Sprintf("%064x", 1)}
	want.MaxAttempts = 3
	want.Deadline = T0.Add(time.Hour)
	first, created, err := s.EnqueueTask(ctx, want, "operator:tok1")
	must(t, err)
	if !created {
		t.Fatal("first enqueue: created = false")
	}
	want.State = store.StateQueued
	want.UpdatedAt = want.CreatedAt
	sameTask(t, first, want)
	sameTask(t, f.get(t, "t1"), want)

	// The same request again, even with other retry settings, is the same task.
	again := want
	again.MaxAttempts = 9
	again.CreatedAt = T0.Add(time.Hour)
	got, created, err := s.EnqueueTask(ctx, again, "operator:tok2")
	must(t, err)
	if created {
		t.Fatal("repeat enqueue: created = true")
	}
	sameTask(t, got, want)

	enqueued := 0
	for _, e := range f.events(t) {
		if e.Action == audit.ActionTaskEnqueued {
			enqueued++
		}
	}
	if enqueued != 1 {
		t.Fatalf("%d task.enqueued events, want 1", enqueued)
	}
}

func testEnqueueMismatch(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	base := f.task("t1", "k1", "k2")
	base.Artifacts = []string{"sha256:" + fmt.Sprintf("%064x", 1)}
	f.enqueue(t, base)
	tests := []struct {
		name   string
		change func(*store.Task)
	}{
		{"another kind", func(t *store.Task) { t.Kind = "helm" }},
		{"another environment", func(t *store.Task) { t.EnvironmentID = f.env2.ID }},
		{"another spec", func(t *store.Task) { t.Spec = []byte(`{"id":"other"}`) }},
		{"other conflict keys", func(t *store.Task) { t.ConflictKeys = []string{"k1"} }},
		{"other artifacts", func(t *store.Task) { t.Artifacts = nil }},
	}
	for _, tt := range tests {
		t.Run("a task with "+tt.name+" is a mismatch", func(t *testing.T) {
			task := base
			tt.change(&task)
			_, _, err := s.EnqueueTask(t.Context(), task, "operator:tok1")
			wantErr(t, err, store.ErrIdempotencyMismatch)
		})
	}
	got := f.get(t, "t1")
	if got.Kind != base.Kind || got.EnvironmentID != base.EnvironmentID {
		t.Fatalf("a mismatch changed the stored task: %+v", got)
	}
}

func testEnqueueForeignEnvironment(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	must(t, s.CreateTenant(ctx, store.Tenant{Name: "globex", CreatedAt: T0}, "operator:root"))
	task := f.task("t1")
	task.Tenant = "globex"
	_, _, err := s.EnqueueTask(ctx, task, "operator:tok1")
	wantErr(t, err, store.ErrNotFound)
	task = f.task("t2")
	task.EnvironmentID = "missing"
	_, _, err = s.EnqueueTask(ctx, task, "operator:tok1")
	wantErr(t, err, store.ErrNotFound)
	// Task ids are per tenant: globex may use t1 in its own environment.
	must(t, s.CreateEnvironment(ctx, store.Environment{ID: "globex-prod", Tenant: "globex", Name: "prod", CreatedAt: T0}, "operator:root"))
	task = f.task("t1")
	task.Tenant, task.EnvironmentID = "globex", "globex-prod"
	f.enqueue(t, f.task("t1"))
	if _, created, err := s.EnqueueTask(ctx, task, "operator:tok1"); err != nil || !created {
		t.Fatalf("enqueue of t1 in another tenant: created=%v err=%v", created, err)
	}
}

func testClaimFIFO(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	f.enqueue(t, f.task("a", "k1"))
	f.enqueue(t, f.task("b", "k1", "k2"))
	f.enqueue(t, f.task("c", "k2"))
	f.enqueue(t, f.task("d", "k3"))
	f.enqueue(t, f.task("e"))

	// b waits for a (k1); c must not overtake b on k2.
	got := f.claim(t, "a1", 10, T0)
	wantIDs(t, got, "a", "d", "e")
	wantIDs(t, f.claim(t, "a2", 10, T0))

	f.complete(t, got[0], store.OutcomeSucceeded, false, T0.Add(time.Second))
	got = f.claim(t, "a2", 10, T0.Add(2*time.Second))
	wantIDs(t, got, "b")
	f.complete(t, got[0], store.OutcomeFailed, false, T0.Add(3*time.Second))
	wantIDs(t, f.claim(t, "a2", 10, T0.Add(4*time.Second)), "c")

	// Max bounds a claim; the rest stays for the next.
	f.enqueue(t, f.task("f"))
	f.enqueue(t, f.task("g"))
	wantIDs(t, f.claim(t, "a1", 1, T0.Add(5*time.Second)), "f")
	wantIDs(t, f.claim(t, "a1", 1, T0.Add(5*time.Second)), "g")

	// Another environment's queue is its own.
	other := f.task("h", "k3")
	other.EnvironmentID = f.env2.ID
	f.enqueue(t, other)
	got, err := s.ClaimTasks(t.Context(), store.ClaimParams{Tenant: f.tenant, EnvironmentID: f.env2.ID, AgentID: "dev-agent", Max: 5, LeaseDuration: time.Minute, Now: T0})
	must(t, err)
	wantIDs(t, got, "h")
}

func testClaimBlockedByBackoff(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	a := f.task("a", "k")
	a.MaxAttempts = 2
	f.enqueue(t, a)
	got := f.claim(t, "a1", 1, T0)
	wantIDs(t, got, "a")
	f.enqueue(t, f.task("b", "k"))
	f.enqueue(t, f.task("c", "other"))
	retried := f.complete(t, got[0], store.OutcomeFailed, true, T0)
	wantTime(t, "NotBefore", retried.NotBefore, T0.Add(time.Minute))

	// a waits for its backoff and still holds k against b.
	wantIDs(t, f.claim(t, "a1", 10, T0.Add(30*time.Second)), "c")
	got = f.claim(t, "a1", 10, T0.Add(time.Minute))
	wantIDs(t, got, "a")
	wantState(t, got[0], store.StateLeased, 2)
	f.complete(t, got[0], store.OutcomeSucceeded, false, T0.Add(time.Minute))
	wantIDs(t, f.claim(t, "a1", 10, T0.Add(time.Minute)), "b")
}

func testClaimKinds(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	h := f.task("helm1", "k")
	h.Kind = "helm"
	f.enqueue(t, h)
	f.enqueue(t, f.task("m1", "k"))
	f.enqueue(t, f.task("m2"))
	got, err := s.ClaimTasks(t.Context(), store.ClaimParams{
		Tenant: f.tenant, EnvironmentID: f.env.ID, AgentID: "a1", Kinds: []string{"manifests"}, Max: 10, LeaseDuration: time.Minute, Now: T0,
	})
	must(t, err)
	// m1 shares k with the older helm task, which this agent cannot run.
	wantIDs(t, got, "m2")
	got, err = s.ClaimTasks(t.Context(), store.ClaimParams{
		Tenant: f.tenant, EnvironmentID: f.env.ID, AgentID: "a2", Kinds: []string{"helm", "manifests"}, Max: 10, LeaseDuration: time.Minute, Now: T0,
	})
	must(t, err)
	wantIDs(t, got, "helm1")
}

func testClaimEpochs(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	task := f.task("t1")
	task.MaxAttempts = 3
	f.enqueue(t, task)
	now := T0
	for epoch := int64(1); epoch <= 3; epoch++ {
		got := f.claim(t, fmt.Sprintf("agent-%d", epoch), 1, now)
		wantIDs(t, got, "t1")
		wantState(t, got[0], store.StateLeased, epoch)
		if got[0].AgentID != fmt.Sprintf("agent-%d", epoch) {
			t.Fatalf("AgentID = %s", got[0].AgentID)
		}
		wantTime(t, "LeaseExpiresAt", got[0].LeaseExpiresAt, now.Add(time.Minute))
		sameTask(t, f.get(t, "t1"), got[0])
		now = now.Add(time.Hour)
		if epoch < 3 {
			f.complete(t, got[0], store.OutcomeFailed, true, now)
			now = now.Add(time.Hour)
		}
	}
}

// staleSetup leaves t1 leased at epoch 2 by a2, after a1's lease at epoch 1
// expired.
func staleSetup(t *testing.T, f *fixture) store.Task {
	task := f.task("t1")
	task.MaxAttempts = 3
	f.enqueue(t, task)
	wantIDs(t, f.claim(t, "a1", 1, T0), "t1")
	res, err := f.s.Sweep(t.Context(), T0.Add(time.Minute), func(int64) time.Duration { return 0 })
	must(t, err)
	if res.Requeued != 1 {
		t.Fatalf("Sweep = %+v, want one requeued", res)
	}
	got := f.claim(t, "a2", 1, T0.Add(2*time.Minute))
	wantIDs(t, got, "t1")
	wantState(t, got[0], store.StateLeased, 2)
	return got[0]
}

func testStaleEpoch(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	current := staleSetup(t, f)
	now := T0.Add(3 * time.Minute)
	tests := []struct {
		name    string
		epoch   int64
		agent   string
		outcome store.Outcome
	}{
		{"the previous attempt's agent reporting success", 1, "a1", store.OutcomeSucceeded},
		{"the previous attempt's agent reporting failure", 1, "a1", store.OutcomeFailed},
		{"another agent at the current epoch", 2, "a1", store.OutcomeSucceeded},
		{"the current agent at a future epoch", 3, "a2", store.OutcomeSucceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			_, err := s.CompleteTask(ctx, store.CompleteParams{
				Tenant: f.tenant, TaskID: "t1", Epoch: tt.epoch, AgentID: tt.agent, Outcome: tt.outcome,
				Result: []byte(`"stale"`), Error: "stale", Backoff: minutes, Now: now,
			})
			wantErr(t, err, store.ErrStaleEpoch)
			_, err = s.RenewLease(ctx, store.RenewParams{Tenant: f.tenant, TaskID: "t1", Epoch: tt.epoch, AgentID: tt.agent, LeaseDuration: time.Hour, Now: now})
			wantErr(t, err, store.ErrStaleEpoch)
			sameTask(t, f.get(t, "t1"), current)
		})
	}
	_, err := s.CompleteTask(ctx, store.CompleteParams{Tenant: f.tenant, TaskID: "missing", Epoch: 1, AgentID: "a1", Outcome: store.OutcomeSucceeded, Now: now})
	wantErr(t, err, store.ErrNotFound)

	done := f.complete(t, current, store.OutcomeSucceeded, false, now)
	wantState(t, done, store.StateSucceeded, 2)
	_, err = s.RenewLease(ctx, store.RenewParams{Tenant: f.tenant, TaskID: "t1", Epoch: 2, AgentID: "a2", LeaseDuration: time.Hour, Now: now})
	wantErr(t, err, store.ErrStaleEpoch)
	_, err = s.CompleteTask(ctx, store.CompleteParams{Tenant: f.tenant, TaskID: "t1", Epoch: 1, AgentID: "a1", Outcome: store.OutcomeSucceeded, Now: now})
	wantErr(t, err, store.ErrStaleEpoch)
	sameTask(t, f.get(t, "t1"), done)
}

func testDuplicateReport(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	f.enqueue(t, f.task("t1"))
	got := f.claim(t, "a1", 1, T0)
	done := f.complete(t, got[0], store.OutcomeSucceeded, false, T0.Add(time.Second))
	before := len(f.events(t))

	again, err := s.CompleteTask(ctx, store.CompleteParams{
		Tenant: f.tenant, TaskID: "t1", Epoch: 1, AgentID: "a1", Outcome: store.OutcomeSucceeded,
		Result: []byte(`"different"`), Now: T0.Add(time.Hour),
	})
	must(t, err)
	sameTask(t, again, done)
	sameTask(t, f.get(t, "t1"), done)
	if after := len(f.events(t)); after != before {
		t.Fatalf("a repeated report appended %d events", after-before)
	}
	// The same epoch with another outcome is not a repeat.
	_, err = s.CompleteTask(ctx, store.CompleteParams{
		Tenant: f.tenant, TaskID: "t1", Epoch: 1, AgentID: "a1", Outcome: store.OutcomeFailed, Error: "late", Now: T0.Add(time.Hour),
	})
	wantErr(t, err, store.ErrStaleEpoch)
	sameTask(t, f.get(t, "t1"), done)
}

func testListTasks(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	for i := range 5 {
		f.enqueue(t, f.task(fmt.Sprintf("p%d", i)))
	}
	for i := range 2 {
		task := f.task(fmt.Sprintf("d%d", i))
		task.EnvironmentID = f.env2.ID
		f.enqueue(t, task)
	}
	must(t, s.CreateTenant(ctx, store.Tenant{Name: "globex", CreatedAt: T0}, "operator:root"))
	must(t, s.CreateEnvironment(ctx, store.Environment{ID: "g1", Tenant: "globex", Name: "prod", CreatedAt: T0}, "operator:root"))
	foreign := f.task("g-task")
	foreign.Tenant, foreign.EnvironmentID = "globex", "g1"
	f.enqueue(t, foreign)
	wantIDs(t, f.claim(t, "a1", 1, T0), "p0")

	var pages [][]string
	cursor := ""
	for {
		page, next, err := s.ListTasks(ctx, store.TaskFilter{Tenant: f.tenant, Limit: 3, BeforeCursor: cursor})
		must(t, err)
		pages = append(pages, ids(page))
		if next == "" {
			break
		}
		cursor = next
		if len(pages) > 10 {
			t.Fatal("listing does not end")
		}
	}
	if got, want := fmt.Sprint(pages), "[[d1 d0 p4] [p3 p2 p1] [p0]]"; got != want {
		t.Fatalf("pages = %s, want %s", got, want)
	}
	tests := []struct {
		name   string
		filter store.TaskFilter
		want   []string
	}{
		{"one environment", store.TaskFilter{Tenant: f.tenant, EnvironmentID: f.env2.ID}, []string{"d1", "d0"}},
		{"one state", store.TaskFilter{Tenant: f.tenant, State: store.StateLeased}, []string{"p0"}},
		{"environment and state", store.TaskFilter{Tenant: f.tenant, EnvironmentID: f.env.ID, State: store.StateQueued}, []string{"p4", "p3", "p2", "p1"}},
		{"another tenant", store.TaskFilter{Tenant: "globex"}, []string{"g-task"}},
	}
	for _, tt := range tests {
		t.Run("a filter on "+tt.name+" selects its tasks", func(t *testing.T) {
			got, next, err := s.ListTasks(ctx, tt.filter)
			must(t, err)
			wantIDs(t, got, tt.want...)
			if next != "" {
				t.Fatalf("next cursor %q on the last page", next)
			}
		})
	}
	_, _, err := s.ListTasks(ctx, store.TaskFilter{Tenant: f.tenant, BeforeCursor: "not-a-cursor"})
	wantErr(t, err, store.ErrInvalidCursor)
}

func testStats(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	for _, id := range []string{"a", "b", "c", "d"} {
		f.enqueue(t, f.task(id))
	}
	got := f.claim(t, "a1", 2, T0)
	f.complete(t, got[0], store.OutcomeSucceeded, false, T0)
	st, err := s.Stats(t.Context())
	must(t, err)
	if st != (store.Stats{Queued: 2, Leased: 1}) {
		t.Fatalf("Stats = %+v, want 2 queued and 1 leased", st)
	}
}

// ConcurrentClaims enqueues tasks whose conflict keys overlap into one
// environment and lets several goroutines, spread over stores (replicas of
// one database), claim and complete them until all are done. It fails if a
// task is leased twice, if two leased tasks share a key, or if a key's
// tasks finish out of enqueue order.
func ConcurrentClaims(t *testing.T, stores []store.Store) {
	f := newFixture(t, stores[0])
	const tasks = 60
	keys := []string{"k0", "k1", "k2", "k3"}
	order := map[string][]string{} // key → task ids in enqueue order
	for i := range tasks {
		var tk []string
		switch i % 3 {
		case 0:
			tk = []string{keys[i%len(keys)]}
		case 1:
			tk = []string{keys[i%len(keys)], keys[(i+1)%len(keys)]}
		}
		task := f.task(fmt.Sprintf("t%02d", i), tk...)
		f.enqueue(t, task)
		for _, k := range tk {
			order[k] = append(order[k], task.ID)
		}
	}

	var (
		mu       sync.Mutex
		held     = map[string]string{} // key → task holding it
		leased   = map[string]bool{}
		done     = map[string]int{}
		finished = map[string][]string{} // key → task ids in completion order
	)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	errc := make(chan error, 8)
	fail := func(err error) {
		errc <- err
		cancel() // the others would wait for tasks nobody will finish
	}
	var wg sync.WaitGroup
	for w := range 8 {
		s := stores[w%len(stores)]
		agent := fmt.Sprintf("agent-%d", w)
		wg.Go(func() {
			for ctx.Err() == nil {
				got, err := s.ClaimTasks(ctx, store.ClaimParams{
					Tenant: f.tenant, EnvironmentID: f.env.ID, AgentID: agent, Max: 2, LeaseDuration: time.Hour, Now: T0,
				})
				if err != nil {
					fail(err)
					return
				}
				mu.Lock()
				for _, task := range got {
					if leased[task.ID] || done[task.ID] > 0 {
						mu.Unlock()
						fail(fmt.Errorf("task %s leased again (attempt %d) by %s", task.ID, task.Attempt, agent))
						return
					}
					leased[task.ID] = true
					for _, k := range task.ConflictKeys {
						if other, ok := held[k]; ok {
							mu.Unlock()
							fail(fmt.Errorf("tasks %s and %s leased together, both hold %s", other, task.ID, k))
							return
						}
						held[k] = task.ID
					}
				}
				all := len(done) == tasks
				mu.Unlock()
				if all {
					return
				}
				for _, task := range got {
					// Release the keys before the report commits: once it
					// has, another claimer may take them.
					mu.Lock()
					for _, k := range task.ConflictKeys {
						delete(held, k)
						finished[k] = append(finished[k], task.ID)
					}
					delete(leased, task.ID)
					done[task.ID]++
					mu.Unlock()
					if _, err := s.CompleteTask(ctx, store.CompleteParams{
						Tenant: f.tenant, TaskID: task.ID, Epoch: task.Attempt, AgentID: agent, Outcome: store.OutcomeSucceeded, Now: T0,
					}); err != nil {
						fail(fmt.Errorf("complete %s: %w", task.ID, err))
						return
					}
				}
			}
			errc <- ctx.Err()
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	}
	if len(done) != tasks {
		t.Fatalf("%d of %d tasks done", len(done), tasks)
	}
	for k, want := range order {
		if fmt.Sprint(finished[k]) != fmt.Sprint(want) {
			t.Fatalf("tasks of %s ran in order %v, want %v", k, finished[k], want)
		}
	}
	for id := range done {
		if got := f.get(t, id); got.State != store.StateSucceeded || got.Attempt != 1 {
			t.Fatalf("task %s is %s at attempt %d, want succeeded at 1", id, got.State, got.Attempt)
		}
	}
}
