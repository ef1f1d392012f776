package store

import (
	"fmt"
	"testing"
	"time"
)

func TestPlanClaims(t *testing.T) {
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	q := func(id string, keys ...string) QueueEntry {
		return QueueEntry{ID: id, State: StateQueued, Kind: "manifests", ConflictKeys: keys}
	}
	leased := func(id string, keys ...string) QueueEntry {
		e := q(id, keys...)
		e.State = StateLeased
		return e
	}
	waiting := func(id string, keys ...string) QueueEntry {
		e := q(id, keys...)
		e.NotBefore = now.Add(time.Second)
		return e
	}
	late := func(id string, keys ...string) QueueEntry {
		e := q(id, keys...)
		e.Deadline = now
		return e
	}
	tests := []struct {
		name    string
		entries []QueueEntry
		max     int
		locked  map[string]bool // ids another replica holds
		lease   string
		expire  string
	}{
		{name: "independent tasks are leased oldest first", entries: []QueueEntry{q("a"), q("b", "k"), q("c")}, max: 10, lease: "[a b c]"},
		{name: "max bounds the leases", entries: []QueueEntry{q("a"), q("b"), q("c")}, max: 2, lease: "[a b]"},
		{name: "a leased task holds its keys", entries: []QueueEntry{leased("x", "k"), q("a", "k"), q("b", "j")}, max: 10, lease: "[b]"},
		{name: "a newer task never overtakes an older one on a key", entries: []QueueEntry{q("a", "k"), q("b", "k", "j"), q("c", "j")}, max: 10, lease: "[a]"},
		{name: "a task in backoff blocks its keys", entries: []QueueEntry{waiting("a", "k"), q("b", "k"), q("c")}, max: 10, lease: "[c]"},
		{name: "a task another replica locked keeps its keys blocked", entries: []QueueEntry{q("a", "k"), q("b", "k"), q("c")}, max: 10, locked: map[string]bool{"a": true}, lease: "[c]"},
		{name: "a task past its deadline is expired and frees its keys", entries: []QueueEntry{late("a", "k"), q("b", "k")}, max: 10, lease: "[b]", expire: "[a]"},
		{name: "a task past its deadline that is locked elsewhere blocks its keys", entries: []QueueEntry{late("a", "k"), q("b", "k")}, max: 10, locked: map[string]bool{"a": true}, lease: "[]", expire: "[]"},
		{name: "deadlines are expired past max", entries: []QueueEntry{q("a"), late("b")}, max: 1, lease: "[a]", expire: "[b]"},
		{name: "finished entries are ignored", entries: []QueueEntry{{ID: "x", State: StateSucceeded, ConflictKeys: []string{"k"}}, q("a", "k")}, max: 10, lease: "[a]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lease, expire := []string{}, []string{}
			err := PlanClaims(tt.entries, nil, tt.max, now, func(e QueueEntry, a ClaimAction) (bool, error) {
				if tt.locked[e.ID] {
					return false, nil
				}
				if a == ClaimLease {
					lease = append(lease, e.ID)
				} else {
					expire = append(expire, e.ID)
				}
				return true, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(lease) != tt.lease {
				t.Errorf("leased %v, want %s", lease, tt.lease)
			}
			if want := tt.expire; want == "" && len(expire) > 0 || want != "" && fmt.Sprint(expire) != want {
				t.Errorf("expired %v, want %s", expire, want)
			}
		})
	}
}

func TestPlanClaimsKinds(t *testing.T) {
	now := time.Now()
	entries := []QueueEntry{
		{ID: "h", State: StateQueued, Kind: "helm", ConflictKeys: []string{"k"}},
		{ID: "m1", State: StateQueued, Kind: "manifests", ConflictKeys: []string{"k"}},
		{ID: "m2", State: StateQueued, Kind: "manifests"},
	}
	var got []string
	err := PlanClaims(entries, []string{"manifests"}, 10, now, func(e QueueEntry, _ ClaimAction) (bool, error) {
		got = append(got, e.ID)
		return true, nil
	})
	if err != nil || fmt.Sprint(got) != "[m2]" {
		t.Fatalf("leased %v (%v), want [m2]: m1 waits behind the helm task it cannot run", got, err)
	}
}

func TestCompleteTaskWakeups(t *testing.T) {
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		keys      []string
		outcome   Outcome
		retryable bool
		wake      bool
	}{
		{"a success without conflict keys wakes nobody", nil, OutcomeSucceeded, false, false},
		{"a final failure without conflict keys wakes nobody", nil, OutcomeFailed, false, false},
		{"a cancellation without conflict keys wakes nobody", nil, OutcomeCancelled, false, false},
		{"a success that frees a conflict key wakes the environment", []string{"helm/ns/a"}, OutcomeSucceeded, false, true},
		{"a final failure that frees a conflict key wakes the environment", []string{"helm/ns/a"}, OutcomeFailed, false, true},
		{"a failure queued for retry wakes the environment", nil, OutcomeFailed, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := Task{
				ID: "t1", Tenant: "acme", EnvironmentID: "env-prod", Kind: "manifests", ConflictKeys: tt.keys,
				MaxAttempts: 3, State: StateLeased, Attempt: 1, AgentID: "a1",
			}
			c, err := CompleteTask(task, "prod", CompleteParams{
				Tenant: "acme", TaskID: "t1", Epoch: 1, AgentID: "a1", Outcome: tt.outcome, Retryable: tt.retryable, Now: now,
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Wakeup != nil; got != tt.wake {
				t.Fatalf("wake-up %+v (state %s), want one: %v", c.Wakeup, c.Task.State, tt.wake)
			}
			if tt.wake && *c.Wakeup != (Wakeup{Tenant: "acme", EnvironmentID: "env-prod"}) {
				t.Fatalf("wake-up %+v, want the task's environment", *c.Wakeup)
			}
		})
	}
}
