package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/outposthq/outpost/internal/store"
)

const taskColumns = `seq, tenant, id, environment_id, kind, spec, conflict_keys, artifacts, max_attempts,
	deadline, state, attempt, agent_id, created_at, updated_at, finished_at, lease_expires_at,
	not_before, cancel_requested, result, error`

// scanTask reads a row of taskColumns and returns the task and its seq.
func scanTask(row interface{ Scan(...any) error }) (store.Task, int64, error) {
	var (
		t                                       store.Task
		seq, created, updated                   int64
		keys, artifacts, state                  string
		deadline, finished, leaseExp, notBefore sql.NullInt64
	)
	err := row.Scan(&seq, &t.Tenant, &t.ID, &t.EnvironmentID, &t.Kind, &t.Spec, &keys, &artifacts, &t.MaxAttempts,
		&deadline, &state, &t.Attempt, &t.AgentID, &created, &updated, &finished, &leaseExp,
		&notBefore, &t.CancelRequested, &t.Result, &t.Error)
	if err != nil {
		return store.Task{}, 0, err
	}
	if t.ConflictKeys, err = decodeList(keys); err != nil {
		return store.Task{}, 0, fmt.Errorf("task %s conflict keys: %w", t.ID, err)
	}
	if t.Artifacts, err = decodeList(artifacts); err != nil {
		return store.Task{}, 0, fmt.Errorf("task %s artifacts: %w", t.ID, err)
	}
	t.State = store.TaskState(state)
	t.Deadline = fromMicros(deadline)
	t.CreatedAt = time.UnixMicro(created).UTC()
	t.UpdatedAt = time.UnixMicro(updated).UTC()
	t.FinishedAt = fromMicros(finished)
	t.LeaseExpiresAt = fromMicros(leaseExp)
	t.NotBefore = fromMicros(notBefore)
	return t, seq, nil
}

func encodeList(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(l) // a []string always encodes
	return string(b)
}

func decodeList(s string) ([]string, error) {
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, err
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}

func getTask(ctx context.Context, q querier, tenant, id string) (store.Task, int64, error) {
	t, seq, err := scanTask(q.QueryRowContext(ctx, qGetTask, tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Task{}, 0, fmt.Errorf("task %q: %w", id, store.ErrNotFound)
	}
	return t, seq, err
}

// envNames caches environment names within one transaction.
type envNames map[string]string

func (n envNames) get(ctx context.Context, q querier, id string) (string, error) {
	if name, ok := n[id]; ok {
		return name, nil
	}
	env, err := getEnv(ctx, q, id)
	if err != nil {
		return "", err
	}
	n[id] = env.Name
	return env.Name, nil
}

// apply writes back what a transition changed and records its event and
// wake-up; a task it finishes settles the release it carries. Every path
// that ends a task (report, cancellation, sweep, claim past a deadline)
// goes through it.
func apply(ctx context.Context, tx *tx, c store.Change) error {
	if c.Write {
		t := c.Task
		if _, err := tx.ExecContext(ctx, qUpdateTask,
			string(t.State), t.Attempt, t.AgentID, t.UpdatedAt.UnixMicro(),
			micros(t.FinishedAt), micros(t.LeaseExpiresAt), micros(t.NotBefore), t.CancelRequested, t.Result, t.Error,
			t.Tenant, t.ID); err != nil {
			return fmt.Errorf("update task %s: %w", t.ID, err)
		}
	}
	if c.Event != nil {
		tx.record(*c.Event)
	}
	if c.Wakeup != nil {
		tx.wakeup(*c.Wakeup)
	}
	if c.Write && c.Task.State.Terminal() {
		env := ""
		if c.Event != nil {
			env = c.Event.Environment
		}
		return settleRelease(ctx, tx, c.Task, env)
	}
	return nil
}

// EnqueueTask inserts t as queued, or returns the stored task with the same
// id when t repeats its request.
func (s *Store) EnqueueTask(ctx context.Context, t store.Task, actor string) (store.Task, bool, error) {
	var (
		nt      store.Task
		created bool
	)
	_, err := s.write(ctx, "enqueue task", func(tx *tx) error {
		var err error
		nt, created, err = insertTask(ctx, tx, t, actor, s.now())
		return err
	})
	if err != nil {
		return store.Task{}, false, err
	}
	return nt, created, nil
}

// insertTask inserts t as queued in tx, records its event and wakes its
// environment; with an existing id it returns the stored task and false,
// or ErrIdempotencyMismatch. Every write that enqueues goes through it.
func insertTask(ctx context.Context, tx *tx, t store.Task, actor string, now time.Time) (store.Task, bool, error) {
	nt := store.NewTask(t, now)
	existing, _, err := getTask(ctx, tx, t.Tenant, t.ID)
	switch {
	case err == nil:
		if !store.SameRequest(existing, t) {
			return store.Task{}, false, fmt.Errorf("task %q: %w", t.ID, store.ErrIdempotencyMismatch)
		}
		return existing, false, nil
	case !errors.Is(err, store.ErrNotFound):
		return store.Task{}, false, err
	}
	env, err := getEnv(ctx, tx, t.EnvironmentID)
	if err != nil {
		return store.Task{}, false, err
	}
	if env.Tenant != t.Tenant {
		return store.Task{}, false, fmt.Errorf("environment %q: %w", t.EnvironmentID, store.ErrNotFound)
	}
	var seq int64
	err = tx.QueryRowContext(ctx, qInsertTask,
		nt.Tenant, nt.ID, nt.EnvironmentID, nt.Kind, nonNil(nt.Spec), encodeList(nt.ConflictKeys), encodeList(nt.Artifacts),
		nt.MaxAttempts, micros(nt.Deadline), string(nt.State), nt.CreatedAt.UnixMicro(), nt.UpdatedAt.UnixMicro(), micros(nt.NotBefore)).
		Scan(&seq)
	if err != nil {
		return store.Task{}, false, fmt.Errorf("insert: %w", err)
	}
	for _, d := range nt.Artifacts {
		if _, err := tx.ExecContext(ctx, `INSERT INTO task_artifacts (task_seq, tenant, digest) VALUES (?, ?, ?)
			ON CONFLICT DO NOTHING`, seq, nt.Tenant, d); err != nil {
			return store.Task{}, false, fmt.Errorf("insert artifact: %w", err)
		}
	}
	tx.record(store.EnqueuedEvent(nt, env.Name, actor))
	tx.wakeup(store.Wakeup{Tenant: nt.Tenant, EnvironmentID: nt.EnvironmentID})
	return nt, true, nil
}

// GetTask returns the tenant's task id.
func (s *Store) GetTask(ctx context.Context, tenant, id string) (store.Task, error) {
	t, _, err := getTask(ctx, s.r, tenant, id)
	if err != nil {
		return store.Task{}, fmt.Errorf("get task: %w", err)
	}
	return t, nil
}

// ListTasks returns a page of the tenant's tasks, newest first.
func (s *Store) ListTasks(ctx context.Context, f store.TaskFilter) ([]store.Task, string, error) {
	if f.Tenant == "" {
		return nil, "", errors.New("list tasks: tenant is required")
	}
	limit := store.PageLimit(f.Limit)
	q := strings.Builder{}
	q.WriteString(`SELECT ` + taskColumns + ` FROM tasks WHERE tenant = ?`)
	args := []any{f.Tenant}
	if f.EnvironmentID != "" {
		q.WriteString(` AND environment_id = ?`)
		args = append(args, f.EnvironmentID)
	}
	if f.State != "" {
		q.WriteString(` AND state = ?`)
		args = append(args, string(f.State))
	}
	if f.BeforeCursor != "" {
		before, err := store.DecodeCursor(f.BeforeCursor)
		if err != nil {
			return nil, "", fmt.Errorf("list tasks: %w", err)
		}
		q.WriteString(` AND seq < ?`)
		args = append(args, before)
	}
	q.WriteString(` ORDER BY seq DESC LIMIT ?`)
	args = append(args, limit+1)
	rows, err := s.r.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, "", fmt.Errorf("list tasks: %w", err)
	}
	defer rows.Close()
	var (
		out  []store.Task
		seqs []int64
	)
	for rows.Next() {
		t, seq, err := scanTask(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list tasks: %w", err)
		}
		out = append(out, t)
		seqs = append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list tasks: %w", err)
	}
	if len(out) <= limit {
		return out, "", nil
	}
	return out[:limit], store.EncodeCursor(seqs[limit-1]), nil
}

// queueEntries returns the environment's leased tasks, then its oldest
// queued ones, as PlanClaims wants them.
func queueEntries(ctx context.Context, q querier, tenant, envID string) ([]store.QueueEntry, error) {
	rows, err := q.QueryContext(ctx, qQueueEntries,
		tenant, envID, tenant, envID, store.ClaimScanLimit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.QueueEntry
	for rows.Next() {
		var (
			e                   store.QueueEntry
			state, keys         string
			notBefore, deadline sql.NullInt64
		)
		if err := rows.Scan(&e.ID, &state, &e.Attempt, &e.Kind, &keys, &notBefore, &deadline); err != nil {
			return nil, err
		}
		e.State = store.TaskState(state)
		if e.ConflictKeys, err = decodeList(keys); err != nil {
			return nil, fmt.Errorf("task %s conflict keys: %w", e.ID, err)
		}
		e.NotBefore = fromMicros(notBefore)
		e.Deadline = fromMicros(deadline)
		out = append(out, e)
	}
	return out, rows.Err()
}

// ClaimTasks leases up to p.Max runnable tasks of the environment; with one
// writer, the scan and the updates see the same queue.
func (s *Store) ClaimTasks(ctx context.Context, p store.ClaimParams) ([]store.Task, error) {
	p = store.NormalizeClaim(p, s.now())
	var claimed []store.Task
	_, err := s.write(ctx, "claim tasks", func(tx *tx) error {
		entries, err := queueEntries(ctx, tx, p.Tenant, p.EnvironmentID)
		if err != nil || len(entries) == 0 {
			return err
		}
		env, err := getEnv(ctx, tx, p.EnvironmentID)
		if err != nil {
			return err
		}
		return store.PlanClaims(entries, p.Kinds, p.Max, p.Now, func(e store.QueueEntry, a store.ClaimAction) (bool, error) {
			t, _, err := getTask(ctx, tx, p.Tenant, e.ID)
			if err != nil {
				return false, err
			}
			var c store.Change
			if a == store.ClaimLease {
				c = store.LeaseTask(t, env.Name, p)
				claimed = append(claimed, c.Task)
			} else {
				c = store.ExpireQueued(t, env.Name, p.Now)
			}
			return true, apply(ctx, tx, c)
		})
	})
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

// RenewLease extends the lease of the task leased at p.Epoch by p.AgentID.
func (s *Store) RenewLease(ctx context.Context, p store.RenewParams) (store.Task, error) {
	p.Now = s.orNow(p.Now)
	var t store.Task
	_, err := s.write(ctx, "renew lease", func(tx *tx) error {
		cur, _, err := getTask(ctx, tx, p.Tenant, p.TaskID)
		if err != nil {
			return err
		}
		if t, err = store.RenewLease(cur, p); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, qRenewLease,
			t.LeaseExpiresAt.UnixMicro(), t.UpdatedAt.UnixMicro(), t.Tenant, t.ID)
		return err
	})
	if err != nil {
		return store.Task{}, err
	}
	return t, nil
}

// CompleteTask records the outcome of the attempt at p.Epoch.
func (s *Store) CompleteTask(ctx context.Context, p store.CompleteParams) (store.Task, error) {
	p.Now = s.orNow(p.Now)
	var t store.Task
	_, err := s.write(ctx, "complete task", func(tx *tx) error {
		cur, _, err := getTask(ctx, tx, p.Tenant, p.TaskID)
		if err != nil {
			return err
		}
		name, err := envNames{}.get(ctx, tx, cur.EnvironmentID)
		if err != nil {
			return err
		}
		c, err := store.CompleteTask(cur, name, p)
		if err != nil {
			return err
		}
		t = c.Task
		return apply(ctx, tx, c)
	})
	if err != nil {
		return store.Task{}, err
	}
	return t, nil
}

// CancelTask cancels a queued task, or asks the agent running a leased one
// to stop.
func (s *Store) CancelTask(ctx context.Context, tenant, id, actor string, now time.Time) (store.Task, error) {
	now = s.orNow(now)
	var t store.Task
	_, err := s.write(ctx, "cancel task", func(tx *tx) error {
		cur, _, err := getTask(ctx, tx, tenant, id)
		if err != nil {
			return err
		}
		name, err := envNames{}.get(ctx, tx, cur.EnvironmentID)
		if err != nil {
			return err
		}
		c := store.CancelTask(cur, name, actor, now)
		t = c.Task
		return apply(ctx, tx, c)
	})
	if err != nil {
		return store.Task{}, err
	}
	return t, nil
}

// sweepBatch bounds how many tasks of each kind one Sweep changes; the next
// Sweep carries on.
const sweepBatch = 1000

// Sweep expires leases, fails queued tasks past their deadline, wakes
// environments whose retries became runnable since the last Sweep, and
// deletes expired nonces.
func (s *Store) Sweep(ctx context.Context, now time.Time, backoff store.BackoffFunc) (store.SweepResult, error) {
	now = s.orNow(now)
	var res store.SweepResult
	_, err := s.write(ctx, "sweep", func(tx *tx) error {
		res = store.SweepResult{}
		names := envNames{}
		var last sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT last_at FROM sweeps WHERE id = 1`).Scan(&last); err != nil {
			return fmt.Errorf("read last sweep: %w", err)
		}
		expire := func(query string, change func(store.Task, string) store.Change) error {
			rows, err := tx.QueryContext(ctx, query, now.UnixMicro(), sweepBatch)
			if err != nil {
				return err
			}
			var tasks []store.Task
			for rows.Next() {
				t, _, err := scanTask(rows)
				if err != nil {
					_ = rows.Close()
					return err
				}
				tasks = append(tasks, t)
			}
			if err := errors.Join(rows.Err(), rows.Close()); err != nil {
				return err
			}
			for _, t := range tasks {
				name, err := names.get(ctx, tx, t.EnvironmentID)
				if err != nil {
					return err
				}
				c := change(t, name)
				store.CountSweep(&res, c)
				if err := apply(ctx, tx, c); err != nil {
					return err
				}
			}
			return nil
		}
		if err := expire(`SELECT `+taskColumns+` FROM tasks WHERE state = 'leased' AND lease_expires_at <= ? ORDER BY seq LIMIT ?`,
			func(t store.Task, env string) store.Change { return store.ExpireLease(t, env, now, backoff) }); err != nil {
			return fmt.Errorf("expire leases: %w", err)
		}
		if err := expire(`SELECT `+taskColumns+` FROM tasks WHERE state = 'queued' AND deadline IS NOT NULL AND deadline <= ? ORDER BY seq LIMIT ?`,
			func(t store.Task, env string) store.Change { return store.ExpireQueued(t, env, now) }); err != nil {
			return fmt.Errorf("expire deadlines: %w", err)
		}
		rows, err := tx.QueryContext(ctx, `SELECT DISTINCT tenant, environment_id FROM tasks
			WHERE state = 'queued' AND attempt > 0 AND not_before <= ? AND (? IS NULL OR not_before > ?)`,
			now.UnixMicro(), last, last)
		if err != nil {
			return fmt.Errorf("find runnable retries: %w", err)
		}
		for rows.Next() {
			var w store.Wakeup
			if err := rows.Scan(&w.Tenant, &w.EnvironmentID); err != nil {
				_ = rows.Close()
				return fmt.Errorf("find runnable retries: %w", err)
			}
			tx.wakeup(w)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("find runnable retries: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sweeps SET last_at = max(coalesce(last_at, 0), ?) WHERE id = 1`, now.UnixMicro()); err != nil {
			return fmt.Errorf("record sweep: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM nonces WHERE expires_at <= ?`, now.UnixMicro()); err != nil {
			return fmt.Errorf("delete expired nonces: %w", err)
		}
		return nil
	})
	return res, err
}

// ExtendLeases pushes every lease expiring before until to until.
func (s *Store) ExtendLeases(ctx context.Context, until time.Time) (int, error) {
	until = store.Micro(until)
	var n int64
	_, err := s.write(ctx, "extend leases", func(tx *tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE tasks SET lease_expires_at = ? WHERE state = 'leased' AND lease_expires_at < ?`,
			until.UnixMicro(), until.UnixMicro())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// Stats counts queued and leased tasks.
func (s *Store) Stats(ctx context.Context) (store.Stats, error) {
	var st store.Stats
	err := s.r.QueryRowContext(ctx, `SELECT
		coalesce(sum(CASE WHEN state = 'queued' THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN state = 'leased' THEN 1 ELSE 0 END), 0)
		FROM tasks WHERE state IN ('queued', 'leased')`).Scan(&st.Queued, &st.Leased)
	if err != nil {
		return store.Stats{}, fmt.Errorf("stats: %w", err)
	}
	return st, nil
}

// DeleteFinishedTasks deletes terminal tasks finished before cutoff.
func (s *Store) DeleteFinishedTasks(ctx context.Context, cutoff time.Time) (int, error) {
	var n int64
	_, err := s.write(ctx, "delete finished tasks", func(tx *tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM tasks WHERE state IN ('succeeded', 'failed', 'cancelled')
			AND finished_at IS NOT NULL AND finished_at < ?`, store.Micro(cutoff).UnixMicro())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}
