package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/audit"
	"github.com/outposthq/outpost/internal/store"
)

var auditScenarios = []scenario{
	{"every change appends an audit event and the chain verifies", testAuditChain},
	{"audit events are listed by sequence and action", testListAudit},
	{"each tenant has its own audit chain", testAuditPerTenant},
	{"one change recording events of several tenants extends each chain", testAuditSeveralTenantsAtOnce},
}

// auditedHistory runs one change of every kind and returns the actions it
// must have recorded, in order.
func auditedHistory(t *testing.T, f *fixture) []string {
	ctx := t.Context()
	s := f.s
	apiHash := sha256.Sum256([]byte("api-secret"))
	must(t, s.CreateAPIToken(ctx, store.APIToken{ID: "tok1", Tenant: f.tenant, Name: "ci", Hash: apiHash[:], CreatedAt: T0}, "operator:root"))
	bootHash := sha256.Sum256([]byte("boot-secret"))
	must(t, s.CreateBootstrapToken(ctx, store.BootstrapToken{ID: "bt1", Hash: bootHash[:], EnvironmentID: f.env.ID, CreatedAt: T0, ExpiresAt: T0.Add(time.Hour), CreatedBy: "operator:tok1"}, "operator:tok1"))
	_, err := s.EnrollAgent(ctx, store.EnrollParams{TokenHash: bootHash[:], Agent: newAgent("a1"), Now: T0})
	must(t, err)

	for _, id := range []string{"ok", "bad", "drop", "stop", "lost"} {
		task := f.task(id)
		if id == "lost" {
			task.MaxAttempts = 2
		}
		f.enqueue(t, task)
	}
	got := f.claim(t, "a1", 2, T0.Add(time.Second))
	f.complete(t, got[0], store.OutcomeSucceeded, false, T0.Add(2*time.Second))
	f.complete(t, got[1], store.OutcomeFailed, false, T0.Add(2*time.Second))
	_, err = s.CancelTask(ctx, f.tenant, "drop", "operator:tok1", T0.Add(3*time.Second))
	must(t, err)
	f.claim(t, "a1", 2, T0.Add(4*time.Second))
	_, err = s.CancelTask(ctx, f.tenant, "stop", "operator:tok1", T0.Add(5*time.Second))
	must(t, err)
	_, err = s.Sweep(ctx, T0.Add(2*time.Minute), minutes)
	must(t, err)
	_, err = s.DisableAgent(ctx, f.tenant, "a1", "operator:tok1", T0.Add(3*time.Minute))
	must(t, err)
	return []string{
		audit.ActionTenantCreated, audit.ActionEnvironmentCreated, audit.ActionEnvironmentCreated,
		audit.ActionAPITokenCreated, audit.ActionBootstrapTokenCreated, audit.ActionAgentRegistered,
		audit.ActionTaskEnqueued, audit.ActionTaskEnqueued, audit.ActionTaskEnqueued, audit.ActionTaskEnqueued, audit.ActionTaskEnqueued,
		audit.ActionTaskClaimed, audit.ActionTaskClaimed, audit.ActionTaskCompleted, audit.ActionTaskFailed,
		audit.ActionTaskCancelled,
		audit.ActionTaskClaimed, audit.ActionTaskClaimed, audit.ActionTaskCancelRequested,
		audit.ActionTaskCancelled, audit.ActionTaskLeaseExpired,
		audit.ActionAgentDisabled,
	}
}

func testAuditChain(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	want := auditedHistory(t, f)
	appended, err := s.AppendAudit(t.Context(), audit.Event{
		Time: T0.Add(time.Hour).Add(123 * time.Nanosecond), Tenant: f.tenant, Environment: "prod", Actor: "agent:a1",
		Action: audit.ActionAgentSelfUpdateApplied, Subject: "a1", Details: `{"version":"1.3.0"}`,
	})
	must(t, err)
	want = append(want, audit.ActionAgentSelfUpdateApplied)
	if appended.Seq != int64(len(want)) || appended.Hash == "" || appended.Hash != appended.ComputeHash() {
		t.Fatalf("AppendAudit returned seq %d hash %q, want a sealed event %d", appended.Seq, appended.Hash, len(want))
	}
	wantTime(t, "appended Time", appended.Time, T0.Add(time.Hour))

	events := f.events(t)
	actions := make([]string, len(events))
	for i, e := range events {
		actions[i] = e.Action
	}
	if !slices.Equal(actions, want) {
		t.Fatalf("actions\n%v\nwant\n%v", actions, want)
	}
	if err := audit.Verify(events); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if last := events[len(events)-1]; last != appended {
		t.Fatalf("listed %+v, appended %+v", last, appended)
	}
	for _, e := range events {
		for _, secret := range []string{"api-secret", "boot-secret"} {
			sum := sha256.Sum256([]byte(secret))
			if strings.Contains(e.Details, secret) || strings.Contains(e.Details, hex.EncodeToString(sum[:])) {
				t.Fatalf("event %d (%s) carries a token: %s", e.Seq, e.Action, e.Details)
			}
		}
		switch e.Action {
		case audit.ActionAgentRegistered:
			for _, k := range []string{`"key_fingerprint":"sha256:`, `"hostname":"node-a1"`, `"env":"prod"`} {
				if !strings.Contains(e.Details, k) {
					t.Fatalf("agent.registered details %s lack %s", e.Details, k)
				}
			}
			if e.Environment != "prod" || e.Subject != "a1" {
				t.Fatalf("agent.registered: environment %q subject %q", e.Environment, e.Subject)
			}
		case audit.ActionTaskClaimed:
			if !strings.Contains(e.Details, `"epoch":1`) || e.Actor != "agent:a1" || e.Environment != "prod" {
				t.Fatalf("agent.task_claimed: %+v", e)
			}
		}
	}
}

func testListAudit(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	all := auditedHistory(t, f)
	page, err := s.ListAudit(ctx, f.tenant, 3, 4, "")
	must(t, err)
	if len(page) != 4 || page[0].Seq != 4 || page[3].Seq != 7 {
		t.Fatalf("ListAudit(after 3, limit 4) = seqs %v", seqs(page))
	}
	// A verification can start in the middle, from the event before.
	prev, err := s.ListAudit(ctx, f.tenant, 2, 1, "")
	must(t, err)
	v := audit.NewVerifier(prev[0])
	for _, e := range page {
		must(t, v.Add(e))
	}
	claimed, err := s.ListAudit(ctx, f.tenant, 0, 100, audit.ActionTaskClaimed)
	must(t, err)
	if len(claimed) != 4 {
		t.Fatalf("%d agent.task_claimed events, want 4", len(claimed))
	}
	for _, e := range claimed {
		if e.Action != audit.ActionTaskClaimed {
			t.Fatalf("filtered listing holds %s", e.Action)
		}
	}
	rest, err := s.ListAudit(ctx, f.tenant, int64(len(all)), 100, "")
	must(t, err)
	if len(rest) != 0 {
		t.Fatalf("listing after the last event returned %d", len(rest))
	}
}

func testAuditPerTenant(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	must(t, s.CreateTenant(ctx, store.Tenant{Name: "globex", CreatedAt: T0}, "operator:root"))
	must(t, s.CreateEnvironment(ctx, store.Environment{ID: "g1", Tenant: "globex", Name: "prod", CreatedAt: T0}, "operator:root"))
	f.enqueue(t, f.task("t1"))
	g, err := s.ListAudit(ctx, "globex", 0, 100, "")
	must(t, err)
	if len(g) != 2 || g[0].Seq != 1 || g[0].Tenant != "globex" {
		t.Fatalf("globex chain = %v", seqs(g))
	}
	must(t, audit.Verify(g))
	must(t, audit.Verify(f.events(t)))
	_, err = s.AppendAudit(ctx, audit.Event{Time: T0, Tenant: "nobody", Action: "x", Details: "{}"})
	wantErr(t, err, store.ErrNotFound)
}

func seqs(es []audit.Event) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

// Tamper checks that audit rows changed behind the store's back fail
// verification. exec runs one SQL statement directly on s's database; the
// statements are plain SQL both dialects accept.
func Tamper(t *testing.T, open func(t *testing.T) store.Store, exec func(t *testing.T, s store.Store, query string)) {
	tests := []struct {
		name  string
		query string
	}{
		{"an edited event is detected", `UPDATE audit_events SET details = '{"forged":true}' WHERE tenant = 'acme' AND seq = 5`},
		{"a re-attributed event is detected", `UPDATE audit_events SET actor = 'operator:nobody' WHERE tenant = 'acme' AND seq = 7`},
		{"a deleted event is detected", `DELETE FROM audit_events WHERE tenant = 'acme' AND seq = 6`},
		{"a deleted first event is detected", `DELETE FROM audit_events WHERE tenant = 'acme' AND seq = 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			f := newFixture(t, s)
			auditedHistory(t, f)
			must(t, audit.Verify(f.events(t)))
			exec(t, s, tt.query)
			err := audit.Verify(f.events(t))
			if !errors.Is(err, audit.ErrChainBroken) {
				t.Fatalf("Verify after %q = %v, want ErrChainBroken", tt.query, err)
			}
		})
	}
}

// A claim of several tasks records several events in one transaction, and
// a sweep records events of every tenant whose leases ran out: each
// chain must come out whole, in the order of the changes.
func testAuditSeveralTenantsAtOnce(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	must(t, s.CreateTenant(ctx, store.Tenant{Name: "globex", CreatedAt: T0}, "operator:root"))
	must(t, s.CreateEnvironment(ctx, store.Environment{ID: "g1", Tenant: "globex", Name: "prod", CreatedAt: T0}, "operator:root"))
	for _, id := range []string{"t1", "t2", "t3"} {
		f.enqueue(t, f.task(id))
	}
	g := store.Task{ID: "g-t1", Tenant: "globex", EnvironmentID: "g1", Kind: "http", Spec: []byte(`{}`), MaxAttempts: 2, CreatedAt: T0}
	if _, _, err := s.EnqueueTask(ctx, g, "operator:root"); err != nil {
		t.Fatal(err)
	}
	if got := f.claim(t, "agent-1", 3, T0.Add(time.Second)); len(got) != 3 {
		t.Fatalf("claimed %d tasks, want 3", len(got))
	}
	gl, err := s.ClaimTasks(ctx, store.ClaimParams{Tenant: "globex", EnvironmentID: "g1", AgentID: "agent-g", Max: 1, LeaseDuration: time.Minute, Now: T0.Add(time.Second)})
	must(t, err)
	if len(gl) != 1 {
		t.Fatalf("globex claimed %d tasks, want 1", len(gl))
	}
	res, err := s.Sweep(ctx, T0.Add(time.Hour), minutes)
	must(t, err)
	if res.Requeued+res.Failed != 4 {
		t.Fatalf("sweep %+v, want 4 leases ended", res)
	}
	acme := f.events(t)
	must(t, audit.Verify(acme))
	globex, err := s.ListAudit(ctx, "globex", 0, 1000, "")
	must(t, err)
	must(t, audit.Verify(globex))
	count := func(es []audit.Event, action string) int {
		n := 0
		for _, e := range es {
			if e.Action == action {
				n++
			}
		}
		return n
	}
	if n := count(acme, audit.ActionTaskClaimed); n != 3 {
		t.Errorf("acme has %d claim events, want 3", n)
	}
	if n := count(acme, audit.ActionTaskLeaseExpired); n != 3 {
		t.Errorf("acme has %d lease expiries, want 3", n)
	}
	if n := count(globex, audit.ActionTaskLeaseExpired); n != 1 {
		t.Errorf("globex has %d lease expiries, want 1", n)
	}
	last := globex[len(globex)-1]
	if last.Action != audit.ActionTaskLeaseExpired || last.Subject != "g-t1" {
		t.Errorf("globex's last event is %s %s, want the lease expiry of g-t1", last.Action, last.Subject)
	}
	// The next change links to the head the sweep left.
	e, err := s.AppendAudit(ctx, audit.Event{Time: T0.Add(2 * time.Hour), Tenant: "globex", Actor: "operator:root", Action: "x", Details: "{}"})
	must(t, err)
	if e.Seq != last.Seq+1 || e.PrevHash != last.Hash {
		t.Fatalf("event after the sweep: seq %d prev %.12s, want %d %.12s", e.Seq, e.PrevHash, last.Seq+1, last.Hash)
	}
}
