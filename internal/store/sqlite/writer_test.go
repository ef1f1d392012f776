package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/audit"
	"github.com/outposthq/outpost/internal/store"
)

// holdWriter makes the writer run a write that blocks until the returned
// release is called, so that the writes issued meanwhile queue up and are
// committed together as the next batch.
func holdWriter(t *testing.T, s *Store) (release func()) {
	t.Helper()
	started, unblock := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := s.write(context.Background(), "hold", func(*tx) error {
			close(started)
			<-unblock
			return nil
		})
		done <- err
	}()
	<-started
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(unblock)
			if err := <-done; err != nil {
				t.Errorf("holding write: %v", err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

// waitQueued waits until n writes wait for the writer.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.writer.queued() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", s.writer.queued(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func openBatching(t *testing.T) (*Store, *[]int) {
	t.Helper()
	s := openTest(t)
	var (
		mu    sync.Mutex
		sizes []int
	)
	// Set before any write of the test; the writer reads it on its own
	// goroutine after taking a batch, which the queue's mutex orders.
	s.writer.mu.Lock()
	s.writer.onBatch = func(n int) {
		mu.Lock()
		sizes = append(sizes, n)
		mu.Unlock()
	}
	s.writer.mu.Unlock()
	return s, &sizes
}

func verifyChain(t *testing.T, s *Store, tenant string) []audit.Event {
	t.Helper()
	var all []audit.Event
	for after := int64(0); ; {
		page, err := s.ListAudit(t.Context(), tenant, after, 1000, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		after = page[len(page)-1].Seq
	}
	if err := audit.Verify(all); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	var head audit.Event
	if err := s.r.QueryRowContext(t.Context(), `SELECT seq, hash FROM audit_heads WHERE tenant = ?`, tenant).Scan(&head.Seq, &head.Hash); err != nil {
		t.Fatal(err)
	}
	if last := all[len(all)-1]; head.Seq != last.Seq || head.Hash != last.Hash {
		t.Fatalf("audit head is %d/%.12s, last event %d/%.12s", head.Seq, head.Hash, last.Seq, last.Hash)
	}
	return all
}

func TestOneFailingWriteInABatchLeavesTheOthersAndTheChainIntact(t *testing.T) {
	s, sizes := openBatching(t)
	ctx := t.Context()
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.CreateTenant(ctx, store.Tenant{Name: "acme", CreatedAt: now}, "operator:root"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateEnvironment(ctx, store.Environment{ID: "env-prod", Tenant: "acme", Name: "prod", CreatedAt: now}, "operator:root"); err != nil {
		t.Fatal(err)
	}
	task := func(id string) store.Task {
		return store.Task{ID: id, Tenant: "acme", EnvironmentID: "env-prod", Kind: "http", Spec: []byte(`{}`), CreatedAt: now}
	}
	if _, _, err := s.EnqueueTask(ctx, task("t-0"), "operator:root"); err != nil {
		t.Fatal(err)
	}
	leased, err := s.ClaimTasks(ctx, store.ClaimParams{Tenant: "acme", EnvironmentID: "env-prod", AgentID: "a1", Max: 1, Now: now})
	if err != nil || len(leased) != 1 {
		t.Fatalf("claim: %v, %d tasks", err, len(leased))
	}
	epoch := leased[0].Attempt
	before := len(verifyChain(t, s, "acme"))

	release := holdWriter(t, s)
	*sizes = nil
	complete := func(epoch int64) error {
		_, err := s.CompleteTask(ctx, store.CompleteParams{Tenant: "acme", TaskID: "t-0", Epoch: epoch, AgentID: "a1",
			Outcome: store.OutcomeSucceeded, Result: []byte(`{}`), Now: now})
		return err
	}
	writes := []struct {
		name string
		call func() error
		want error // nil: succeeds
	}{
		{"an enqueue before the failures", func() error { _, _, err := s.EnqueueTask(ctx, task("t-1"), "operator:root"); return err }, nil},
		{"a report with a stale epoch", func() error { return complete(epoch + 1) }, store.ErrStaleEpoch},
		{"a repeated id with another request", func() error {
			x := task("t-0")
			x.Spec = []byte(`{"other":true}`)
			_, _, err := s.EnqueueTask(ctx, x, "operator:root")
			return err
		}, store.ErrIdempotencyMismatch},
		{"a write that fails after changing rows", func() error {
			_, err := s.write(ctx, "half write", func(tx *tx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES ('half', x'01')`); err != nil {
					return err
				}
				tx.record(audit.Event{Tenant: "acme", Actor: "test", Action: "test.half", Details: "{}"})
				return errors.New("failed after writing")
			})
			return err
		}, errors.New("failed after writing")},
		{"an audit event of an unknown tenant", func() error {
			_, err := s.AppendAudit(ctx, audit.Event{Tenant: "nobody", Actor: "test", Action: "test.nobody", Time: now})
			return err
		}, store.ErrNotFound},
		{"the right report", func() error { return complete(epoch) }, nil},
		{"an enqueue after the failures", func() error { _, _, err := s.EnqueueTask(ctx, task("t-2"), "operator:root"); return err }, nil},
		{"an audit event after the failures", func() error {
			_, err := s.AppendAudit(ctx, audit.Event{Tenant: "acme", Actor: "test", Action: "test.after", Time: now})
			return err
		}, nil},
	}
	errs := make([]error, len(writes))
	var wg sync.WaitGroup
	for i, w := range writes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.call()
		}()
		// One at a time, so that they run in this order.
		waitQueued(t, s, i+1)
	}
	release()
	wg.Wait()

	if got := *sizes; len(got) != 1 || got[0] != len(writes) {
		t.Fatalf("batches %v, want one of %d writes", got, len(writes))
	}
	for i, w := range writes {
		switch {
		case w.want == nil && errs[i] != nil:
			t.Errorf("%s failed: %v", w.name, errs[i])
		case w.want != nil && errs[i] == nil:
			t.Errorf("%s succeeded, want %v", w.name, w.want)
		case w.want != nil && errors.Is(w.want, store.ErrNotFound) && !errors.Is(errs[i], w.want),
			w.want != nil && errors.Is(w.want, store.ErrStaleEpoch) && !errors.Is(errs[i], w.want),
			w.want != nil && errors.Is(w.want, store.ErrIdempotencyMismatch) && !errors.Is(errs[i], w.want):
			t.Errorf("%s: %v, want %v", w.name, errs[i], w.want)
		}
	}
	for id, want := range map[string]store.TaskState{"t-0": store.StateSucceeded, "t-1": store.StateQueued, "t-2": store.StateQueued} {
		got, err := s.GetTask(ctx, "acme", id)
		if err != nil || got.State != want {
			t.Errorf("task %s: %v, %s; want %s", id, err, got.State, want)
		}
	}
	if got, _ := s.GetTask(ctx, "acme", "t-0"); string(got.Spec) != `{}` {
		t.Errorf("task t-0 spec %s, want the first request's", got.Spec)
	}
	var half int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM settings WHERE key = 'half'`).Scan(&half); err != nil || half != 0 {
		t.Errorf("the failed write's row: %d (%v), want rolled back", half, err)
	}
	events := verifyChain(t, s, "acme")
	var actions []string
	for _, e := range events[before:] {
		actions = append(actions, e.Action+" "+e.Subject)
	}
	want := []string{
		audit.ActionTaskEnqueued + " t-1",
		audit.ActionTaskCompleted + " t-0",
		audit.ActionTaskEnqueued + " t-2",
		"test.after ",
	}
	if fmt.Sprint(actions) != fmt.Sprint(want) {
		t.Fatalf("events appended by the batch: %q, want %q", actions, want)
	}
	var nobody int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM audit_events WHERE tenant = 'nobody'`).Scan(&nobody); err != nil || nobody != 0 {
		t.Fatalf("events of the unknown tenant: %d (%v)", nobody, err)
	}
}

func TestConcurrentWritesAreCommittedTogetherAndChainInOrder(t *testing.T) {
	s, sizes := openBatching(t)
	ctx := t.Context()
	if err := s.CreateTenant(ctx, store.Tenant{Name: "acme"}, "operator:root"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTenant(ctx, store.Tenant{Name: "globex"}, "operator:root"); err != nil {
		t.Fatal(err)
	}
	for _, env := range []store.Environment{{ID: "e-a", Tenant: "acme", Name: "prod"}, {ID: "e-g", Tenant: "globex", Name: "prod"}} {
		if err := s.CreateEnvironment(ctx, env, "operator:root"); err != nil {
			t.Fatal(err)
		}
	}
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tenant, env := "acme", "e-a"
			if i%2 == 1 {
				tenant, env = "globex", "e-g"
			}
			id := fmt.Sprintf("t-%d", i)
			if _, _, err := s.EnqueueTask(ctx, store.Task{ID: id, Tenant: tenant, EnvironmentID: env, Kind: "http", Spec: []byte(`{}`)}, "operator:root"); err != nil {
				errs[i] = err
				return
			}
			leased, err := s.ClaimTasks(ctx, store.ClaimParams{Tenant: tenant, EnvironmentID: env, AgentID: "a-" + tenant, Max: 1})
			if err != nil {
				errs[i] = err
				return
			}
			for _, l := range leased {
				if _, err := s.CompleteTask(ctx, store.CompleteParams{Tenant: tenant, TaskID: l.ID, Epoch: l.Attempt, AgentID: "a-" + tenant,
					Outcome: store.OutcomeSucceeded, Result: []byte(`{}`)}); err != nil {
					errs[i] = err
				}
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	grouped := false
	for _, n := range *sizes {
		grouped = grouped || n > 1
	}
	if !grouped {
		t.Logf("no two writes shared a transaction (batches %v); the chains are still checked", *sizes)
	}
	for _, tenant := range []string{"acme", "globex"} {
		events := verifyChain(t, s, tenant)
		enq := 0
		for _, e := range events {
			if e.Action == audit.ActionTaskEnqueued {
				enq++
			}
		}
		if enq != n/2 {
			t.Errorf("%s: %d enqueue events, want %d", tenant, enq, n/2)
		}
	}
}

func TestAQueuedWriteWhoseCallerGaveUpNeverRuns(t *testing.T) {
	s, _ := openBatching(t)
	if err := s.CreateTenant(t.Context(), store.Tenant{Name: "acme"}, "operator:root"); err != nil {
		t.Fatal(err)
	}
	release := holdWriter(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- s.CreateTenant(ctx, store.Tenant{Name: "globex"}, "operator:root")
	}()
	waitQueued(t, s, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("CreateTenant = %v, want context.Canceled", err)
	}
	release()
	// A write after it goes through the writer, so the cancelled one had
	// its chance to run.
	if err := s.CreateTenant(t.Context(), store.Tenant{Name: "initech"}, "operator:root"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetTenant(t.Context(), "globex"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetTenant(globex) = %v, want ErrNotFound", err)
	}
}

func TestWritesAfterCloseFail(t *testing.T) {
	s, err := Open(t.Context(), Options{Path: filepath.Join(t.TempDir(), "hub.db")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTenant(t.Context(), store.Tenant{Name: "acme"}, "operator:root"); !errors.Is(err, errClosed) {
		t.Fatalf("CreateTenant after Close = %v, want errClosed", err)
	}
}

func TestWritesWithoutGroupingStillCommit(t *testing.T) {
	s, err := Open(t.Context(), Options{Path: filepath.Join(t.TempDir(), "hub.db"), MaxBatch: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	var sizes []int
	s.writer.mu.Lock()
	s.writer.onBatch = func(n int) { sizes = append(sizes, n) }
	s.writer.mu.Unlock()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.CreateTenant(t.Context(), store.Tenant{Name: fmt.Sprintf("t%d", i)}, "operator:root"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, n := range sizes {
		if n != 1 {
			t.Fatalf("batches %v with MaxBatch 1", sizes)
		}
	}
}
