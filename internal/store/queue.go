package store

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/outposthq/outpost/internal/audit"
)

// This file holds the queue rules both implementations share, as pure
// functions over rows: which tasks a claim may lease, and what a claim, a
// report, a cancellation or an expiry does to a task. The drivers only load
// rows, lock them, and write back what these functions return, so a rule is
// written once and holds the same on SQLite and on PostgreSQL.

// ActorHub is the actor of changes the hub makes on its own (sweeps, expiry).
const ActorHub = "hub"

// DefaultLeaseDuration is used when a claim asks for no lease duration.
const DefaultLeaseDuration = 60 * time.Second

// ClaimScanLimit bounds how many queued tasks of one environment a claim
// looks at, oldest first.
const ClaimScanLimit = 1000

// AgentActor is the actor string of an agent.
func AgentActor(id string) string { return "agent:" + id }

// Micro returns t in UTC truncated to the microsecond, the precision both
// stores round-trip; the zero time stays zero.
func Micro(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// reached reports whether the instant at has come by now; a zero at never
// comes.
func reached(at, now time.Time) bool {
	return !at.IsZero() && !now.Before(at)
}

// QueueEntry is one unfinished task of an environment as PlanClaims sees it.
type QueueEntry struct {
	ID    string
	State TaskState
	// Attempt lets a replica check, once it holds the row lock, that the
	// task is still the one it planned with.
	Attempt      int64
	Kind         string
	ConflictKeys []string
	NotBefore    time.Time
	Deadline     time.Time
}

// ClaimAction is what PlanClaims asks its caller to do with one task.
type ClaimAction int

// Claim actions.
const (
	// ClaimLease: lease the task to the claiming agent (LeaseTask).
	ClaimLease ClaimAction = iota + 1
	// ClaimExpire: fail the queued task, its deadline has passed
	// (ExpireQueued).
	ClaimExpire
)

// PlanClaims walks entries, an environment's unfinished tasks oldest first
// (every leased one and the oldest queued ones), and calls act for each
// queued task to lease or to fail for its deadline, until max tasks are
// leased. act reports whether it applied the action: false when the task
// could not be locked (another replica holds it), in which case its conflict
// keys stay blocked.
//
// A key is blocked by a leased task, by an older queued task that cannot run
// yet (backoff, another kind), by an older runnable task that is itself
// blocked, and by every task act was called for; so no two leased tasks ever
// share a key and a newer task never overtakes an older unfinished one.
func PlanClaims(entries []QueueEntry, kinds []string, max int, now time.Time, act func(QueueEntry, ClaimAction) (bool, error)) error {
	blocked := make(map[string]struct{})
	block := func(keys []string) {
		for _, k := range keys {
			blocked[k] = struct{}{}
		}
	}
	free := func(keys []string) bool {
		for _, k := range keys {
			if _, ok := blocked[k]; ok {
				return false
			}
		}
		return true
	}
	leased := 0
	for _, e := range entries {
		switch e.State {
		case StateLeased:
			block(e.ConflictKeys)
			continue
		case StateQueued:
		default:
			continue
		}
		if reached(e.Deadline, now) {
			ok, err := act(e, ClaimExpire)
			if err != nil {
				return err
			}
			if !ok {
				block(e.ConflictKeys)
			}
			continue
		}
		if leased >= max {
			// Keep walking only to fail tasks past their deadline.
			continue
		}
		runnable := !e.NotBefore.After(now) && (len(kinds) == 0 || slices.Contains(kinds, e.Kind))
		if !runnable || !free(e.ConflictKeys) {
			block(e.ConflictKeys)
			continue
		}
		ok, err := act(e, ClaimLease)
		if err != nil {
			return err
		}
		block(e.ConflictKeys)
		if ok {
			leased++
		}
	}
	return nil
}

// NormalizeClaim fills a claim's defaults: at least one task, a lease of
// DefaultLeaseDuration, and now (when p.Now is zero).
func NormalizeClaim(p ClaimParams, now time.Time) ClaimParams {
	if p.Max < 1 {
		p.Max = 1
	}
	if p.LeaseDuration <= 0 {
		p.LeaseDuration = DefaultLeaseDuration
	}
	if p.Now.IsZero() {
		p.Now = now
	}
	p.Now = Micro(p.Now)
	return p
}

// SameRequest reports whether b repeats the enqueue request a: same
// environment, kind, spec bytes, conflict keys and artifacts.
func SameRequest(a, b Task) bool {
	return a.EnvironmentID == b.EnvironmentID &&
		a.Kind == b.Kind &&
		bytes.Equal(a.Spec, b.Spec) &&
		slices.Equal(a.ConflictKeys, b.ConflictKeys) &&
		slices.Equal(a.Artifacts, b.Artifacts)
}

// NewTask returns t as a freshly enqueued task: queued, attempt 0, no
// lease, no result; CreatedAt defaults to now and MaxAttempts to 1.
func NewTask(t Task, now time.Time) Task {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = now
	}
	if t.MaxAttempts < 1 {
		t.MaxAttempts = 1
	}
	return Task{
		ID:            t.ID,
		Tenant:        t.Tenant,
		EnvironmentID: t.EnvironmentID,
		Kind:          t.Kind,
		Spec:          t.Spec,
		ConflictKeys:  t.ConflictKeys,
		Artifacts:     t.Artifacts,
		MaxAttempts:   t.MaxAttempts,
		Deadline:      Micro(t.Deadline),
		State:         StateQueued,
		CreatedAt:     Micro(t.CreatedAt),
		UpdatedAt:     Micro(t.CreatedAt),
		NotBefore:     Micro(t.NotBefore),
	}
}

// EnqueuedEvent is the audit event of a new task.
func EnqueuedEvent(t Task, env, actor string) audit.Event {
	return taskEvent(t, env, actor, audit.ActionTaskEnqueued, t.CreatedAt, map[string]any{
		"kind":          t.Kind,
		"conflict_keys": t.ConflictKeys,
		"max_attempts":  t.MaxAttempts,
	})
}

func taskEvent(t Task, env, actor, action string, now time.Time, details map[string]any) audit.Event {
	return audit.Event{
		Time:        now,
		Tenant:      t.Tenant,
		Environment: env,
		Actor:       actor,
		Action:      action,
		Subject:     t.ID,
		Details:     audit.NewDetails(details),
	}
}

// Change is what one transition does to a task: the row to write back, the
// audit event to append and the wake-up to emit after commit.
type Change struct {
	Task Task
	// Write is false when nothing changed (a repeat, a finished task).
	Write bool
	// Event is nil when there is nothing to record.
	Event *audit.Event
	// Wakeup is nil when no listener needs to know.
	Wakeup *Wakeup
}

func (c Change) withEvent(e audit.Event) Change {
	c.Event = &e
	return c
}

func wakeup(t Task, cancel bool) *Wakeup {
	w := Wakeup{Tenant: t.Tenant, EnvironmentID: t.EnvironmentID}
	if cancel {
		w.CancelTaskID = t.ID
	}
	return &w
}

// LeaseTask leases queued t to p.AgentID at the next epoch.
func LeaseTask(t Task, env string, p ClaimParams) Change {
	t.State = StateLeased
	t.Attempt++
	t.AgentID = p.AgentID
	t.LeaseExpiresAt = Micro(p.Now.Add(p.LeaseDuration))
	t.UpdatedAt = p.Now
	c := Change{Task: t, Write: true}
	return c.withEvent(taskEvent(t, env, AgentActor(p.AgentID), audit.ActionTaskClaimed, p.Now, map[string]any{
		"epoch": t.Attempt,
	}))
}

// ExpireQueued fails queued t whose deadline has passed.
func ExpireQueued(t Task, env string, now time.Time) Change {
	t = finish(t, StateFailed, now)
	t.Error = "deadline exceeded"
	c := Change{Task: t, Write: true}
	return c.withEvent(taskEvent(t, env, ActorHub, audit.ActionTaskDeadlineExceeded, now, map[string]any{
		"epoch": t.Attempt,
		"state": string(StateQueued),
	}))
}

func finish(t Task, s TaskState, now time.Time) Task {
	t.State = s
	t.UpdatedAt = now
	t.FinishedAt = now
	t.LeaseExpiresAt = time.Time{}
	return t
}

// RenewLease extends t's lease, or fails with ErrStaleEpoch when t is not
// leased at p.Epoch by p.AgentID.
func RenewLease(t Task, p RenewParams) (Task, error) {
	if t.State != StateLeased || t.Attempt != p.Epoch || t.AgentID != p.AgentID {
		return t, fmt.Errorf("task %s at epoch %d (current %d, %s): %w", t.ID, p.Epoch, t.Attempt, t.State, ErrStaleEpoch)
	}
	if p.LeaseDuration <= 0 {
		p.LeaseDuration = DefaultLeaseDuration
	}
	t.LeaseExpiresAt = Micro(p.Now.Add(p.LeaseDuration))
	t.UpdatedAt = p.Now
	return t, nil
}

// CompleteTask records the outcome of the attempt at p.Epoch (p.Now set).
// A report matching a finished task (same epoch, agent and outcome) is a
// harmless repeat and changes nothing; any other mismatch is ErrStaleEpoch.
// A retryable failure with attempts left goes back to the queue after
// p.Backoff. The environment is woken only when the report can make work
// claimable: the task is queued again, or it frees conflict keys that may
// hold back other tasks. Without keys, a finished task blocks nothing, and
// the reporting agent claims again on its own when a slot frees up.
func CompleteTask(t Task, env string, p CompleteParams) (Change, error) {
	switch p.Outcome {
	case OutcomeSucceeded, OutcomeFailed, OutcomeCancelled:
	default:
		return Change{}, fmt.Errorf("task %s: unknown outcome %q", t.ID, p.Outcome)
	}
	if t.Attempt != p.Epoch || t.AgentID != p.AgentID {
		return Change{}, fmt.Errorf("task %s at epoch %d (current %d): %w", t.ID, p.Epoch, t.Attempt, ErrStaleEpoch)
	}
	if t.State != StateLeased {
		if t.State.Terminal() && string(t.State) == string(p.Outcome) {
			return Change{Task: t}, nil
		}
		return Change{}, fmt.Errorf("task %s at epoch %d is %s: %w", t.ID, p.Epoch, t.State, ErrStaleEpoch)
	}
	now := p.Now
	t.Result = p.Result
	t.Error = p.Error
	details := map[string]any{"epoch": t.Attempt}
	var action string
	switch p.Outcome {
	case OutcomeSucceeded:
		t = finish(t, StateSucceeded, now)
		action = audit.ActionTaskCompleted
	case OutcomeCancelled:
		t = finish(t, StateCancelled, now)
		action = audit.ActionTaskCancelled
	case OutcomeFailed:
		action = audit.ActionTaskFailed
		retry := p.Retryable && t.Attempt < int64(t.MaxAttempts) && !t.CancelRequested && !reached(t.Deadline, now)
		if retry {
			t = requeue(t, now, p.Backoff)
			details["not_before"] = t.NotBefore.Format(time.RFC3339Nano)
		} else {
			t = finish(t, StateFailed, now)
		}
		details["retry"] = retry
		details["error"] = p.Error
	}
	c := Change{Task: t, Write: true}
	if t.State == StateQueued || len(t.ConflictKeys) > 0 {
		c.Wakeup = wakeup(t, false)
	}
	return c.withEvent(taskEvent(t, env, AgentActor(p.AgentID), action, now, details)), nil
}

func requeue(t Task, now time.Time, backoff BackoffFunc) Task {
	var wait time.Duration
	if backoff != nil {
		wait = max(backoff(t.Attempt), 0)
	}
	t.State = StateQueued
	t.UpdatedAt = now
	t.LeaseExpiresAt = time.Time{}
	t.NotBefore = Micro(now.Add(wait))
	return t
}

// CancelTask cancels queued t at once and marks leased t CancelRequested
// (waking its environment with CancelTaskID); a finished task, or one whose
// cancellation is already pending, is left as it is.
func CancelTask(t Task, env, actor string, now time.Time) Change {
	switch {
	case t.State == StateQueued:
		t = finish(t, StateCancelled, now)
		c := Change{Task: t, Write: true}
		return c.withEvent(taskEvent(t, env, actor, audit.ActionTaskCancelled, now, map[string]any{
			"epoch": t.Attempt,
			"state": string(StateQueued),
		}))
	case t.State == StateLeased && !t.CancelRequested:
		t.CancelRequested = true
		t.UpdatedAt = now
		c := Change{Task: t, Write: true, Wakeup: wakeup(t, true)}
		return c.withEvent(taskEvent(t, env, actor, audit.ActionTaskCancelRequested, now, map[string]any{
			"epoch":    t.Attempt,
			"agent_id": t.AgentID,
		}))
	default:
		return Change{Task: t}
	}
}

// ExpireLease ends leased t whose lease ran out: cancelled if its
// cancellation was pending, failed if its deadline passed or no attempt is
// left, otherwise queued again after backoff (and its environment woken).
func ExpireLease(t Task, env string, now time.Time, backoff BackoffFunc) Change {
	epoch := t.Attempt
	switch {
	case t.CancelRequested:
		t = finish(t, StateCancelled, now)
		c := Change{Task: t, Write: true}
		return c.withEvent(taskEvent(t, env, ActorHub, audit.ActionTaskCancelled, now, map[string]any{
			"epoch":  epoch,
			"reason": "lease expired",
		}))
	case reached(t.Deadline, now):
		t = finish(t, StateFailed, now)
		t.Error = "deadline exceeded"
		c := Change{Task: t, Write: true}
		return c.withEvent(taskEvent(t, env, ActorHub, audit.ActionTaskDeadlineExceeded, now, map[string]any{
			"epoch": epoch,
			"state": string(StateLeased),
		}))
	}
	t.Error = fmt.Sprintf("lease expired (attempt %d)", epoch)
	details := map[string]any{"epoch": epoch, "agent_id": t.AgentID}
	c := Change{Write: true}
	if t.Attempt < int64(t.MaxAttempts) {
		t = requeue(t, now, backoff)
		details["retry"] = true
		details["not_before"] = t.NotBefore.Format(time.RFC3339Nano)
		c.Wakeup = wakeup(t, false)
	} else {
		t = finish(t, StateFailed, now)
		details["retry"] = false
	}
	c.Task = t
	return c.withEvent(taskEvent(t, env, ActorHub, audit.ActionTaskLeaseExpired, now, details))
}

// CountSweep adds what c did to a task to r.
func CountSweep(r *SweepResult, c Change) {
	if !c.Write {
		return
	}
	switch c.Task.State {
	case StateQueued:
		r.Requeued++
	case StateFailed:
		r.Failed++
	case StateCancelled:
		r.Cancelled++
	}
}

// PageLimit bounds a page size: 100 when unset, at most 1000.
func PageLimit(n int) int {
	switch {
	case n <= 0:
		return 100
	case n > 1000:
		return 1000
	}
	return n
}
