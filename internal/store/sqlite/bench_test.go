package sqlite

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/store"
)

// BenchmarkTaskCycle runs one task through the hot path a hub drives:
// enqueue, claim, renew, complete, get.
func BenchmarkTaskCycle(b *testing.B) {
	ctx := b.Context()
	s, err := Open(ctx, Options{Path: filepath.Join(b.TempDir(), "hub.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	must := func(err error) {
		b.Helper()
		if err != nil {
			b.Fatal(err)
		}
	}
	must(s.CreateTenant(ctx, store.Tenant{Name: "acme", CreatedAt: now}, "operator:root"))
	must(s.CreateEnvironment(ctx, store.Environment{ID: "env-prod", Tenant: "acme", Name: "prod", CreatedAt: now}, "operator:root"))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		id := fmt.Sprintf("t-%d", i)
		_, _, err := s.EnqueueTask(ctx, store.Task{ID: id, Tenant: "acme", EnvironmentID: "env-prod", Kind: "http",
			Spec: []byte(`{"method":"GET","url":"https://example.invalid/"}`), MaxAttempts: 3, CreatedAt: now}, "operator:tok")
		must(err)
		leased, err := s.ClaimTasks(ctx, store.ClaimParams{Tenant: "acme", EnvironmentID: "env-prod", AgentID: "a1", Max: 1, Now: now})
		must(err)
		if len(leased) != 1 {
			b.Fatalf("claimed %d tasks", len(leased))
		}
		t := leased[0]
		_, err = s.RenewLease(ctx, store.RenewParams{Tenant: "acme", TaskID: id, Epoch: t.Attempt, AgentID: "a1", Now: now})
		must(err)
		_, err = s.CompleteTask(ctx, store.CompleteParams{Tenant: "acme", TaskID: id, Epoch: t.Attempt, AgentID: "a1",
			Outcome: store.OutcomeSucceeded, Result: []byte(`{}`), Now: now})
		must(err)
		_, err = s.GetTask(ctx, "acme", id)
		must(err)
	}
}

// BenchmarkTaskCycleParallel runs the cycle of BenchmarkTaskCycle from
// many goroutines, one environment each, as a hub serving many agents
// does: with group commit (the default) and with every write committed
// alone (MaxBatch 1).
func BenchmarkTaskCycleParallel(b *testing.B) {
	for _, batch := range []int{1, 0} {
		name := "grouped"
		if batch == 1 {
			name = "alone"
		}
		b.Run(name, func(b *testing.B) {
			ctx := b.Context()
			s, err := Open(ctx, Options{Path: filepath.Join(b.TempDir(), "hub.db"), MaxBatch: batch})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
			if err := s.CreateTenant(ctx, store.Tenant{Name: "acme", CreatedAt: now}, "operator:root"); err != nil {
				b.Fatal(err)
			}
			var envs, ids atomic.Int64
			b.SetParallelism(16)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				env := fmt.Sprintf("env-%d", envs.Add(1))
				if err := s.CreateEnvironment(ctx, store.Environment{ID: env, Tenant: "acme", Name: env, CreatedAt: now}, "operator:root"); err != nil {
					b.Error(err)
					return
				}
				for pb.Next() {
					id := fmt.Sprintf("t-%d", ids.Add(1))
					if _, _, err := s.EnqueueTask(ctx, store.Task{ID: id, Tenant: "acme", EnvironmentID: env, Kind: "http",
						Spec: []byte(`{"method":"GET","url":"https://example.invalid/"}`), MaxAttempts: 3, CreatedAt: now}, "operator:tok"); err != nil {
						b.Error(err)
						return
					}
					leased, err := s.ClaimTasks(ctx, store.ClaimParams{Tenant: "acme", EnvironmentID: env, AgentID: "a-" + env, Max: 1, Now: now})
					if err != nil || len(leased) != 1 {
						b.Errorf("claim: %v, %d tasks", err, len(leased))
						return
					}
					if _, err := s.CompleteTask(ctx, store.CompleteParams{Tenant: "acme", TaskID: id, Epoch: leased[0].Attempt, AgentID: "a-" + env,
						Outcome: store.OutcomeSucceeded, Result: []byte(`{}`), Now: now}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
