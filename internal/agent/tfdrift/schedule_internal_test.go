package tfdrift

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	testclock "k8s.io/utils/clock/testing"

	"github.com/outposthq/outpost/internal/executor"
)

type nopExecutor struct{}

func (nopExecutor) Execute(context.Context, executor.Task) (json.RawMessage, error) {
	return json.RawMessage(`{}`), nil
}

func TestScheduleWaitsOneIntervalAfterLoad(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const interval = time.Hour
	rel := func(rev int64) Release {
		return Release{Name: "db", Revision: rev, TaskID: "t1", Spec: json.RawMessage(`{"workspace":"db","url":"https://modules.example/db.tar.gz"}`)}
	}
	newChecker := func(t *testing.T, jitter time.Duration) (*Checker, *testclock.FakeClock) {
		t.Helper()
		clk := testclock.NewFakeClock(t0)
		c, err := New(Options{
			Executor: nopExecutor{}, NewRedactor: func() Redactor { return nil }, Interval: interval, Clock: clk,
			Jitter: func(time.Duration) time.Duration { return jitter },
		})
		if err != nil {
			t.Fatal(err)
		}
		c.SetDesired([]Release{rel(1)})
		return c, clk
	}
	due := func(c *Checker, at time.Time) ([]string, time.Duration) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.dueLocked(at)
	}

	t.Run("a loaded release is not due before one interval", func(t *testing.T) {
		c, _ := newChecker(t, 0)
		names, wait := due(c, t0.Add(interval-time.Second))
		if len(names) != 0 || wait != time.Second {
			t.Fatalf("due = %v, wait %v; want none for one more second", names, wait)
		}
		if names, _ := due(c, t0.Add(interval)); !slices.Equal(names, []string{"db"}) {
			t.Fatalf("due at one interval = %v, want db", names)
		}
	})
	t.Run("the jitter delays the check", func(t *testing.T) {
		c, _ := newChecker(t, 5*time.Minute)
		if names, _ := due(c, t0.Add(interval)); len(names) != 0 {
			t.Fatalf("due = %v before the jitter passed", names)
		}
		if names, _ := due(c, t0.Add(interval+5*time.Minute)); !slices.Equal(names, []string{"db"}) {
			t.Fatalf("due = %v, want db after interval and jitter", names)
		}
	})
	t.Run("the same release loaded again keeps its schedule", func(t *testing.T) {
		c, clk := newChecker(t, 0)
		clk.Step(30 * time.Minute)
		c.SetDesired([]Release{rel(1)})
		if names, _ := due(c, t0.Add(interval)); !slices.Equal(names, []string{"db"}) {
			t.Fatalf("due = %v, want db on its first schedule", names)
		}
	})
	t.Run("a new revision is checked one interval after it was applied", func(t *testing.T) {
		c, clk := newChecker(t, 0)
		clk.Step(30 * time.Minute)
		c.SetDesired([]Release{rel(2)})
		if names, _ := due(c, t0.Add(interval)); len(names) != 0 {
			t.Fatalf("due = %v on the old revision's schedule", names)
		}
		if names, _ := due(c, t0.Add(interval+30*time.Minute)); !slices.Equal(names, []string{"db"}) {
			t.Fatalf("due = %v, want db one interval after revision 2", names)
		}
	})
	t.Run("a check asked for is due at once", func(t *testing.T) {
		c, _ := newChecker(t, 0)
		if !c.CheckNow("db") || c.CheckNow("other") {
			t.Fatal("CheckNow does not know db, or knows a release never loaded")
		}
		if names, _ := due(c, t0); !slices.Equal(names, []string{"db"}) {
			t.Fatalf("due = %v, want db at once", names)
		}
	})
	t.Run("a forgotten release is never due", func(t *testing.T) {
		c, _ := newChecker(t, 0)
		c.Forget("db")
		if names, _ := due(c, t0.Add(10*interval)); len(names) != 0 {
			t.Fatalf("due = %v after Forget", names)
		}
	})
}
