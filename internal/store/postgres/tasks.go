package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/outposthq/outpost/internal/store"
)

const taskColumns = `seq, tenant, id, environment_id, kind, spec, conflict_keys, artifacts, max_attempts,
	deadline, state, attempt, agent_id, created_at, updated_at, finished_at, lease_expires_at,
	not_before, cancel_requested, result, error`

// scanTask reads a row of taskColumns and returns the task and its seq.
func scanTask(row pgx.Row) (store.Task, int64, error) {
	var (
		t                                       store.Task
		seq                                     int64
		state                                   string
		deadline, finished, leaseExp, notBefore pgtype.Timestamptz
	)
	err := row.Scan(&seq, &t.Tenant, &t.ID, &t.EnvironmentID, &t.Kind, &t.Spec, &t.ConflictKeys, &t.Artifacts, &t.MaxAttempts,
		&deadline, &state, &t.Attempt, &t.AgentID, &t.CreatedAt, &t.UpdatedAt, &finished, &leaseExp,
		&notBefore, &t.CancelRequested, &t.Result, &t.Error)
	if err != nil {
		return store.Task{}, 0, err
	}
	t.ConflictKeys = orNil(t.ConflictKeys)
	t.Artifacts = orNil(t.Artifacts)
	t.State = store.TaskState(state)
	t.Deadline = fromTS(deadline)
	t.CreatedAt = t.CreatedAt.UTC()
	t.UpdatedAt = t.UpdatedAt.UTC()
	t.FinishedAt = fromTS(finished)
	t.LeaseExpiresAt = fromTS(leaseExp)
	t.NotBefore = fromTS(notBefore)
	return t, seq, nil
}

func collectTasks(rows pgx.Rows) ([]store.Task, []int64, error) {
	defer rows.Close()
	var (
		tasks []store.Task
		seqs  []int64
	)
	for rows.Next() {
		t, seq, err := scanTask(rows)
		if err != nil {
			return nil, nil, err
		}
		tasks = append(tasks, t)
		seqs = append(seqs, seq)
	}
	return tasks, seqs, rows.Err()
}

// getTask reads the tenant's task id; lock is appended to the query
// ("FOR UPDATE" or "").
func getTask(ctx context.Context, q querier, tenant, id, lock string) (store.Task, int64, error) {
	t, seq, err := scanTask(q.QueryRow(ctx, `SELECT `+taskColumns+` FROM tasks WHERE tenant = $1 AND id = $2 `+lock, tenant, id))
	if errors.Is(err, pgx.ErrNoRows) {
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

// apply writes back what a transition changed (the row is locked by the
// caller) and records its event and wake-up; a task it finishes settles
// the release it carries. Every path that ends a task (report,
// cancellation, sweep, claim past a deadline) goes through it.
func apply(ctx context.Context, tx *tx, c store.Change) error {
	if c.Write {
		t := c.Task
		if _, err := tx.Exec(ctx, `UPDATE tasks SET state = $1, attempt = $2, agent_id = $3, updated_at = $4,
			finished_at = $5, lease_expires_at = $6, not_before = $7, cancel_requested = $8, result = $9, error = $10
			WHERE tenant = $11 AND id = $12`,
			string(t.State), t.Attempt, t.AgentID, t.UpdatedAt,
			ts(t.FinishedAt), ts(t.LeaseExpiresAt), ts(t.NotBefore), t.CancelRequested, t.Result, t.Error,
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

// lockQueue takes the transaction advisory lock of envID's queue. Enqueues
// into one environment hold it, so that tasks commit in seq order: a claim
// never sees a newer task of a key while an older one is still invisible.
// Release and secret changes take it first too, which serializes them per
// environment. Taking it again in the same transaction is harmless.
func lockQueue(ctx context.Context, tx *tx, envID string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('outpost.enqueue:' || $1, 0))`, envID); err != nil {
		return fmt.Errorf("lock environment queue: %w", err)
	}
	return nil
}

// insertTask inserts t as queued in tx, records its event and wakes its
// environment; with an existing id it returns the stored task and false,
// or ErrIdempotencyMismatch. Every write that enqueues goes through it.
func insertTask(ctx context.Context, tx *tx, t store.Task, actor string, now time.Time) (store.Task, bool, error) {
	nt := store.NewTask(t, now)
	if err := lockQueue(ctx, tx, t.EnvironmentID); err != nil {
		return store.Task{}, false, err
	}
	existing := func() (store.Task, bool, error) {
		cur, _, err := getTask(ctx, tx, t.Tenant, t.ID, "")
		if err != nil {
			return store.Task{}, false, err
		}
		if !store.SameRequest(cur, t) {
			return store.Task{}, false, fmt.Errorf("task %q: %w", t.ID, store.ErrIdempotencyMismatch)
		}
		return cur, false, nil
	}
	if cur, created, err := existing(); !errors.Is(err, store.ErrNotFound) {
		return cur, created, err
	}
	env, err := getEnv(ctx, tx, t.EnvironmentID)
	if err != nil {
		return store.Task{}, false, err
	}
	if env.Tenant != t.Tenant {
		return store.Task{}, false, fmt.Errorf("environment %q: %w", t.EnvironmentID, store.ErrNotFound)
	}
	var seq int64
	err = tx.QueryRow(ctx, `INSERT INTO tasks (tenant, id, environment_id, kind, spec, conflict_keys, artifacts,
		max_attempts, deadline, state, attempt, created_at, updated_at, not_before)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $12, $13)
		ON CONFLICT (tenant, id) DO NOTHING RETURNING seq`,
		nt.Tenant, nt.ID, nt.EnvironmentID, nt.Kind, nonNil(nt.Spec), nonNil(nt.ConflictKeys), nonNil(nt.Artifacts),
		nt.MaxAttempts, ts(nt.Deadline), string(nt.State), nt.CreatedAt, nt.UpdatedAt, ts(nt.NotBefore)).
		Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		// Enqueued meanwhile into another environment under the same id.
		return existing()
	}
	if err != nil {
		return store.Task{}, false, fmt.Errorf("insert: %w", err)
	}
	if len(nt.Artifacts) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO task_artifacts (task_seq, tenant, digest)
			SELECT $1, $2, d FROM unnest($3::text[]) AS d ON CONFLICT DO NOTHING`, seq, nt.Tenant, nt.Artifacts); err != nil {
			return store.Task{}, false, fmt.Errorf("insert artifacts: %w", err)
		}
	}
	tx.record(store.EnqueuedEvent(nt, env.Name, actor))
	tx.wakeup(store.Wakeup{Tenant: nt.Tenant, EnvironmentID: nt.EnvironmentID})
	return nt, true, nil
}

// GetTask returns the tenant's task id.
func (s *Store) GetTask(ctx context.Context, tenant, id string) (store.Task, error) {
	t, _, err := getTask(ctx, s.pool, tenant, id, "")
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
	var q strings.Builder
	args := []any{f.Tenant}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	q.WriteString(`SELECT ` + taskColumns + ` FROM tasks WHERE tenant = $1`)
	if f.EnvironmentID != "" {
		q.WriteString(` AND environment_id = ` + arg(f.EnvironmentID))
	}
	if f.State != "" {
		q.WriteString(` AND state = ` + arg(string(f.State)))
	}
	if f.BeforeCursor != "" {
		before, err := store.DecodeCursor(f.BeforeCursor)
		if err != nil {
			return nil, "", fmt.Errorf("list tasks: %w", err)
		}
		q.WriteString(` AND seq < ` + arg(before))
	}
	q.WriteString(` ORDER BY seq DESC LIMIT ` + arg(limit+1))
	rows, err := s.pool.Query(ctx, q.String(), args...)
	if err != nil {
		return nil, "", fmt.Errorf("list tasks: %w", err)
	}
	out, seqs, err := collectTasks(rows)
	if err != nil {
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
	rows, err := q.Query(ctx, `(SELECT id, state, attempt, kind, conflict_keys, not_before, deadline, 0 AS part, seq FROM tasks
			WHERE tenant = $1 AND environment_id = $2 AND state = 'leased')
		UNION ALL
		(SELECT id, state, attempt, kind, conflict_keys, not_before, deadline, 1 AS part, seq FROM tasks
			WHERE tenant = $1 AND environment_id = $2 AND state = 'queued' ORDER BY seq LIMIT $3)
		ORDER BY part, seq`, tenant, envID, store.ClaimScanLimit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.QueueEntry, error) {
		var (
			e                   store.QueueEntry
			state               string
			notBefore, deadline pgtype.Timestamptz
			part, seq           int64
		)
		if err := r.Scan(&e.ID, &state, &e.Attempt, &e.Kind, &e.ConflictKeys, &notBefore, &deadline, &part, &seq); err != nil {
			return e, err
		}
		e.State = store.TaskState(state)
		e.NotBefore = fromTS(notBefore)
		e.Deadline = fromTS(deadline)
		return e, nil
	})
}

// ClaimTasks leases up to p.Max runnable tasks of the environment. It plans
// on a snapshot of the queue and locks each chosen task with SKIP LOCKED,
// checking that it is still queued at the attempt it planned with; a task
// it cannot lock keeps its conflict keys blocked, so replicas claiming at
// once stay conservative rather than overlap.
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
			t, _, err := scanTask(tx.QueryRow(ctx, `SELECT `+taskColumns+` FROM tasks
				WHERE tenant = $1 AND id = $2 AND state = 'queued' AND attempt = $3 FOR UPDATE SKIP LOCKED`, p.Tenant, e.ID, e.Attempt))
			if errors.Is(err, pgx.ErrNoRows) {
				return false, nil
			}
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
		cur, _, err := getTask(ctx, tx, p.Tenant, p.TaskID, "FOR UPDATE")
		if err != nil {
			return err
		}
		if t, err = store.RenewLease(cur, p); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE tasks SET lease_expires_at = $1, updated_at = $2 WHERE tenant = $3 AND id = $4`,
			t.LeaseExpiresAt, t.UpdatedAt, t.Tenant, t.ID)
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
		cur, _, err := getTask(ctx, tx, p.Tenant, p.TaskID, "FOR UPDATE")
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
		cur, _, err := getTask(ctx, tx, tenant, id, "FOR UPDATE")
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
// environments whose retries became runnable since the last Sweep (of any
// replica), and deletes expired nonces. Sweeps of several replicas take
// turns on the sweeps row; tasks another transaction holds are left for the
// next Sweep.
func (s *Store) Sweep(ctx context.Context, now time.Time, backoff store.BackoffFunc) (store.SweepResult, error) {
	now = s.orNow(now)
	var res store.SweepResult
	_, err := s.write(ctx, "sweep", func(tx *tx) error {
		res = store.SweepResult{}
		names := envNames{}
		var last pgtype.Timestamptz
		if err := tx.QueryRow(ctx, `SELECT last_at FROM sweeps WHERE id = 1 FOR UPDATE`).Scan(&last); err != nil {
			return fmt.Errorf("read last sweep: %w", err)
		}
		expire := func(query string, change func(store.Task, string) store.Change) error {
			rows, err := tx.Query(ctx, query, now, sweepBatch)
			if err != nil {
				return err
			}
			tasks, _, err := collectTasks(rows)
			if err != nil {
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
		if err := expire(`SELECT `+taskColumns+` FROM tasks WHERE state = 'leased' AND lease_expires_at <= $1
			ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED`,
			func(t store.Task, env string) store.Change { return store.ExpireLease(t, env, now, backoff) }); err != nil {
			return fmt.Errorf("expire leases: %w", err)
		}
		if err := expire(`SELECT `+taskColumns+` FROM tasks WHERE state = 'queued' AND deadline <= $1
			ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED`,
			func(t store.Task, env string) store.Change { return store.ExpireQueued(t, env, now) }); err != nil {
			return fmt.Errorf("expire deadlines: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT DISTINCT tenant, environment_id FROM tasks
			WHERE state = 'queued' AND attempt > 0 AND not_before <= $1 AND ($2::timestamptz IS NULL OR not_before > $2)`,
			now, last)
		if err != nil {
			return fmt.Errorf("find runnable retries: %w", err)
		}
		retries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Wakeup, error) {
			var w store.Wakeup
			return w, r.Scan(&w.Tenant, &w.EnvironmentID)
		})
		if err != nil {
			return fmt.Errorf("find runnable retries: %w", err)
		}
		slices.SortFunc(retries, func(a, b store.Wakeup) int {
			return strings.Compare(a.Tenant+"\x00"+a.EnvironmentID, b.Tenant+"\x00"+b.EnvironmentID)
		})
		for _, w := range retries {
			tx.wakeup(w)
		}
		if _, err := tx.Exec(ctx, `UPDATE sweeps SET last_at = greatest(last_at, $1) WHERE id = 1`, now); err != nil {
			return fmt.Errorf("record sweep: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM nonces WHERE expires_at <= $1`, now); err != nil {
			return fmt.Errorf("delete expired nonces: %w", err)
		}
		return nil
	})
	return res, err
}

// ExtendLeases pushes every lease expiring before until to until.
func (s *Store) ExtendLeases(ctx context.Context, until time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE tasks SET lease_expires_at = $1 WHERE state = 'leased' AND lease_expires_at < $1`, store.Micro(until))
	if err != nil {
		return 0, fmt.Errorf("extend leases: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// Stats counts queued and leased tasks.
func (s *Store) Stats(ctx context.Context) (store.Stats, error) {
	var st store.Stats
	err := s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'queued'), count(*) FILTER (WHERE state = 'leased')
		FROM tasks WHERE state IN ('queued', 'leased')`).Scan(&st.Queued, &st.Leased)
	if err != nil {
		return store.Stats{}, fmt.Errorf("stats: %w", err)
	}
	return st, nil
}

// DeleteFinishedTasks deletes terminal tasks finished before cutoff.
func (s *Store) DeleteFinishedTasks(ctx context.Context, cutoff time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM tasks WHERE state IN ('succeeded', 'failed', 'cancelled')
		AND finished_at < $1`, store.Micro(cutoff))
	if err != nil {
		return 0, fmt.Errorf("delete finished tasks: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
