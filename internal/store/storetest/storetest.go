package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/audit"
	"github.com/outposthq/outpost/internal/store"
)

// T0 is the instant the suite's scenarios start at, with microseconds so
// that a store losing precision is caught.
var T0 = time.Date(2031, 3, 4, 5, 6, 7, 890123000, time.UTC)

// waitTimeout bounds how long the suite waits for something asynchronous
// (a wake-up) before failing.
const waitTimeout = 10 * time.Second

type scenario struct {
	name string
	run  func(t *testing.T, s store.Store)
}

// Run runs the conformance suite, each scenario on a fresh store from open;
// open registers the store's cleanup with t.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	var all []scenario
	all = append(all, identityScenarios...)
	all = append(all, queueScenarios...)
	all = append(all, lifecycleScenarios...)
	all = append(all, auditScenarios...)
	all = append(all, blobScenarios...)
	all = append(all, wakeupScenarios...)
	all = append(all, releaseScenarios...)
	all = append(all, terraformScenarios...)
	all = append(all, secretScenarios...)
	for _, sc := range all {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			sc.run(t, open(t))
		})
	}
}

// fixture is a tenant with two environments and the helpers the scenarios
// share.
type fixture struct {
	s      store.Store
	tenant string
	env    store.Environment
	env2   store.Environment
	next   time.Duration
}

func newFixture(t *testing.T, s store.Store) *fixture {
	t.Helper()
	f := &fixture{s: s, tenant: "acme"}
	f.env = store.Environment{ID: "env-prod", Tenant: f.tenant, Name: "prod", CreatedAt: T0}
	f.env2 = store.Environment{ID: "env-dev", Tenant: f.tenant, Name: "dev", CreatedAt: T0}
	must(t, s.CreateTenant(t.Context(), store.Tenant{Name: f.tenant, CreatedAt: T0}, "operator:root"))
	must(t, s.CreateEnvironment(t.Context(), f.env, "operator:root"))
	must(t, s.CreateEnvironment(t.Context(), f.env2, "operator:root"))
	return f
}

// task returns a task of the fixture's first environment; each one is
// created a microsecond after the previous, so creation order is clear.
func (f *fixture) task(id string, keys ...string) store.Task {
	f.next += time.Microsecond
	return store.Task{
		ID: id, Tenant: f.tenant, EnvironmentID: f.env.ID, Kind: "manifests",
		Spec: []byte(`{"id":"` + id + `"}`), ConflictKeys: keys, MaxAttempts: 1, CreatedAt: T0.Add(f.next),
	}
}

func (f *fixture) enqueue(t *testing.T, task store.Task) store.Task {
	t.Helper()
	got, created, err := f.s.EnqueueTask(t.Context(), task, "operator:tok1")
	must(t, err)
	if !created {
		t.Fatalf("EnqueueTask(%s): created = false for a new id", task.ID)
	}
	return got
}

func (f *fixture) claim(t *testing.T, agent string, max int, now time.Time) []store.Task {
	t.Helper()
	got, err := f.s.ClaimTasks(t.Context(), store.ClaimParams{
		Tenant: f.tenant, EnvironmentID: f.env.ID, AgentID: agent, Max: max, LeaseDuration: time.Minute, Now: now,
	})
	must(t, err)
	return got
}

func (f *fixture) complete(t *testing.T, task store.Task, outcome store.Outcome, retryable bool, now time.Time) store.Task {
	t.Helper()
	got, err := f.s.CompleteTask(t.Context(), store.CompleteParams{
		Tenant: f.tenant, TaskID: task.ID, Epoch: task.Attempt, AgentID: task.AgentID, Outcome: outcome,
		Result: []byte(`{"attempt":` + fmt.Sprint(task.Attempt) + `}`), Error: errorText(outcome, task.Attempt),
		Retryable: retryable, Backoff: minutes, Now: now,
	})
	must(t, err)
	return got
}

func errorText(o store.Outcome, attempt int64) string {
	if o == store.OutcomeFailed {
		return fmt.Sprintf("boom %d", attempt)
	}
	return ""
}

func (f *fixture) get(t *testing.T, id string) store.Task {
	t.Helper()
	got, err := f.s.GetTask(t.Context(), f.tenant, id)
	must(t, err)
	return got
}

func (f *fixture) events(t *testing.T) []audit.Event {
	t.Helper()
	var all []audit.Event
	after := int64(0)
	for {
		page, err := f.s.ListAudit(t.Context(), f.tenant, after, 1000, "")
		must(t, err)
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		after = page[len(page)-1].Seq
	}
}

// minutes is the suite's backoff: attempt n waits n minutes.
func minutes(n int64) time.Duration { return time.Duration(n) * time.Minute }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

func ids(ts []store.Task) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

func wantIDs(t *testing.T, got []store.Task, want ...string) {
	t.Helper()
	g := ids(got)
	if !slices.Equal(g, want) {
		t.Fatalf("tasks = %v, want %v", g, want)
	}
}

func wantState(t *testing.T, task store.Task, state store.TaskState, attempt int64) {
	t.Helper()
	if task.State != state || task.Attempt != attempt {
		t.Fatalf("task %s is %s at attempt %d, want %s at attempt %d", task.ID, task.State, task.Attempt, state, attempt)
	}
}

func wantTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

// sameTask compares what a store round-trips of a task.
func sameTask(t *testing.T, got, want store.Task) {
	t.Helper()
	diff := func(field string, g, w any) {
		t.Errorf("task %s: %s = %v, want %v", want.ID, field, g, w)
	}
	if got.ID != want.ID || got.Tenant != want.Tenant || got.EnvironmentID != want.EnvironmentID || got.Kind != want.Kind {
		diff("identity", []string{got.ID, got.Tenant, got.EnvironmentID, got.Kind}, []string{want.ID, want.Tenant, want.EnvironmentID, want.Kind})
	}
	if !bytes.Equal(got.Spec, want.Spec) {
		diff("Spec", string(got.Spec), string(want.Spec))
	}
	if fmt.Sprint(got.ConflictKeys) != fmt.Sprint(want.ConflictKeys) {
		diff("ConflictKeys", got.ConflictKeys, want.ConflictKeys)
	}
	if fmt.Sprint(got.Artifacts) != fmt.Sprint(want.Artifacts) {
		diff("Artifacts", got.Artifacts, want.Artifacts)
	}
	if got.MaxAttempts != want.MaxAttempts || got.State != want.State || got.Attempt != want.Attempt || got.AgentID != want.AgentID {
		diff("queue state", fmt.Sprint(got.MaxAttempts, got.State, got.Attempt, got.AgentID), fmt.Sprint(want.MaxAttempts, want.State, want.Attempt, want.AgentID))
	}
	for _, tc := range []struct {
		field     string
		got, want time.Time
	}{
		{"Deadline", got.Deadline, want.Deadline},
		{"CreatedAt", got.CreatedAt, want.CreatedAt},
		{"UpdatedAt", got.UpdatedAt, want.UpdatedAt},
		{"FinishedAt", got.FinishedAt, want.FinishedAt},
		{"LeaseExpiresAt", got.LeaseExpiresAt, want.LeaseExpiresAt},
		{"NotBefore", got.NotBefore, want.NotBefore},
	} {
		if !tc.got.Equal(tc.want) {
			diff(tc.field, tc.got, tc.want)
		}
	}
	if got.CancelRequested != want.CancelRequested || !bytes.Equal(got.Result, want.Result) || got.Error != want.Error {
		diff("outcome", fmt.Sprint(got.CancelRequested, string(got.Result), got.Error), fmt.Sprint(want.CancelRequested, string(want.Result), want.Error))
	}
	if t.Failed() {
		t.FailNow()
	}
}
