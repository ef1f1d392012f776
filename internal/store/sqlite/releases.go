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

const releaseColumns = `tenant, environment_id, name, kind, mode, revision, applied_revision, applied_task_id,
	sync, last_error, drift, drift_corrected, drift_at, task_id, delete_requested, created_at, updated_at`

const revisionColumns = `tenant, environment_id, release, revision, kind, spec, artifacts, mode, ignore_rules,
	digest, description, created_by, created_at, rolled_back_from, plan, outputs`

// releaseScan holds the columns of one release row while it is scanned.
type releaseScan struct {
	r                store.ReleaseRow
	mode, sync       string
	drift            string
	driftAt          sql.NullInt64
	created, updated int64
}

func (x *releaseScan) dest() []any {
	r := &x.r
	return []any{&r.Tenant, &r.EnvironmentID, &r.Name, &r.Kind, &x.mode, &r.Revision, &r.AppliedRevision, &r.AppliedTaskID,
		&x.sync, &r.LastError, &x.drift, &r.DriftCorrected, &x.driftAt, &r.TaskID, &r.DeleteRequested, &x.created, &x.updated}
}

func (x *releaseScan) row() (store.ReleaseRow, error) {
	r := x.r
	r.Mode = store.ReleaseMode(x.mode)
	r.Sync = store.ReleaseSync(x.sync)
	if err := json.Unmarshal([]byte(x.drift), &r.Drift); err != nil {
		return store.ReleaseRow{}, fmt.Errorf("release %s drift: %w", r.Name, err)
	}
	if len(r.Drift) == 0 {
		r.Drift = nil
	}
	r.DriftAt = fromMicros(x.driftAt)
	r.CreatedAt = time.UnixMicro(x.created).UTC()
	r.UpdatedAt = time.UnixMicro(x.updated).UTC()
	return r, nil
}

// revisionScan holds the columns of one revision row while it is scanned.
type revisionScan struct {
	v                       store.ReleaseRevision
	artifacts, mode, ignore string
	created                 int64
	plan, outputs           sql.NullString
}

func (x *revisionScan) dest() []any {
	v := &x.v
	return []any{&v.Tenant, &v.EnvironmentID, &v.Release, &v.Revision, &v.Kind, &v.Spec, &x.artifacts, &x.mode, &x.ignore,
		&v.Digest, &v.Description, &v.CreatedBy, &x.created, &v.RolledBackFrom, &x.plan, &x.outputs}
}

func (x *revisionScan) revision() (store.ReleaseRevision, error) {
	v := x.v
	var err error
	if v.Artifacts, err = decodeList(x.artifacts); err != nil {
		return store.ReleaseRevision{}, fmt.Errorf("release %s revision %d artifacts: %w", v.Release, v.Revision, err)
	}
	if err := json.Unmarshal([]byte(x.ignore), &v.Ignore); err != nil {
		return store.ReleaseRevision{}, fmt.Errorf("release %s revision %d ignore rules: %w", v.Release, v.Revision, err)
	}
	if len(v.Ignore) == 0 {
		v.Ignore = nil
	}
	if x.plan.Valid {
		v.Plan = &store.PlanSummary{}
		if err := json.Unmarshal([]byte(x.plan.String), v.Plan); err != nil {
			return store.ReleaseRevision{}, fmt.Errorf("release %s revision %d plan: %w", v.Release, v.Revision, err)
		}
	}
	if x.outputs.Valid {
		v.Outputs = []byte(x.outputs.String)
	}
	v.Mode = store.ReleaseMode(x.mode)
	v.CreatedAt = time.UnixMicro(x.created).UTC()
	return v, nil
}

func scanRelease(row interface{ Scan(...any) error }) (store.ReleaseRow, error) {
	var x releaseScan
	if err := row.Scan(x.dest()...); err != nil {
		return store.ReleaseRow{}, err
	}
	return x.row()
}

func scanRevision(row interface{ Scan(...any) error }) (store.ReleaseRevision, error) {
	var x revisionScan
	if err := row.Scan(x.dest()...); err != nil {
		return store.ReleaseRevision{}, err
	}
	return x.revision()
}

func getRelease(ctx context.Context, q querier, tenant, envID, name string) (store.ReleaseRow, error) {
	r, err := scanRelease(q.QueryRowContext(ctx, `SELECT `+releaseColumns+` FROM releases
		WHERE tenant = ? AND environment_id = ? AND name = ?`, tenant, envID, name))
	if errors.Is(err, sql.ErrNoRows) {
		return store.ReleaseRow{}, fmt.Errorf("release %q: %w", name, store.ErrNotFound)
	}
	return r, err
}

func getRevision(ctx context.Context, q querier, tenant, envID, name string, revision int64) (store.ReleaseRevision, error) {
	v, err := scanRevision(q.QueryRowContext(ctx, `SELECT `+revisionColumns+` FROM release_revisions
		WHERE tenant = ? AND environment_id = ? AND release = ? AND revision = ?`, tenant, envID, name, revision))
	if errors.Is(err, sql.ErrNoRows) {
		return store.ReleaseRevision{}, fmt.Errorf("release %q revision %d: %w", name, revision, store.ErrNotFound)
	}
	return v, err
}

// tenantEnv returns the environment envID if it belongs to tenant.
func tenantEnv(ctx context.Context, q querier, tenant, envID string) (store.Environment, error) {
	env, err := getEnv(ctx, q, envID)
	if err != nil {
		return store.Environment{}, err
	}
	if env.Tenant != tenant {
		return store.Environment{}, fmt.Errorf("environment %q: %w", envID, store.ErrNotFound)
	}
	return env, nil
}

// qualify prefixes each of the comma-separated columns with alias.
func qualify(columns, alias string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = alias + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

func encodeDrift(d []store.ObjectDrift) string {
	if len(d) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(d) // plain strings and bools always encode
	return string(b)
}

// encodePlan returns p as JSON, NULL when nil.
func encodePlan(p *store.PlanSummary) sql.NullString {
	if p == nil {
		return sql.NullString{}
	}
	b, _ := json.Marshal(p) // plain strings, ints and bools always encode
	return sql.NullString{String: string(b), Valid: true}
}

// encodeOutputs returns outputs, a JSON object, NULL when empty.
func encodeOutputs(outputs []byte) sql.NullString {
	if len(outputs) == 0 {
		return sql.NullString{}
	}
	return sql.NullString{String: string(outputs), Valid: true}
}

func encodeIgnore(rules []store.IgnoreRule) string {
	if len(rules) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(rules) // plain strings always encode
	return string(b)
}

// writeRelease inserts or updates r.
func writeRelease(ctx context.Context, tx *tx, r store.ReleaseRow) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO releases (`+releaseColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tenant, environment_id, name) DO UPDATE SET
			kind = excluded.kind, mode = excluded.mode, revision = excluded.revision,
			applied_revision = excluded.applied_revision, applied_task_id = excluded.applied_task_id,
			sync = excluded.sync, last_error = excluded.last_error, drift = excluded.drift,
			drift_corrected = excluded.drift_corrected, drift_at = excluded.drift_at, task_id = excluded.task_id,
			delete_requested = excluded.delete_requested, updated_at = excluded.updated_at`,
		r.Tenant, r.EnvironmentID, r.Name, r.Kind, string(r.Mode), r.Revision, r.AppliedRevision, r.AppliedTaskID,
		string(r.Sync), r.LastError, encodeDrift(r.Drift), r.DriftCorrected, micros(r.DriftAt), r.TaskID, r.DeleteRequested,
		r.CreatedAt.UnixMicro(), r.UpdatedAt.UnixMicro())
	if err != nil {
		return fmt.Errorf("write release %s: %w", r.Name, err)
	}
	return nil
}

func insertRevision(ctx context.Context, tx *tx, v store.ReleaseRevision) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO release_revisions (`+revisionColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		v.Tenant, v.EnvironmentID, v.Release, v.Revision, v.Kind, nonNil(v.Spec), encodeList(v.Artifacts), string(v.Mode),
		encodeIgnore(v.Ignore), v.Digest, v.Description, v.CreatedBy, v.CreatedAt.UnixMicro(), v.RolledBackFrom,
		encodePlan(v.Plan), encodeOutputs(v.Outputs)); err != nil {
		return fmt.Errorf("insert release %s revision %d: %w", v.Release, v.Revision, err)
	}
	for _, d := range v.Artifacts {
		if _, err := tx.ExecContext(ctx, `INSERT INTO release_artifacts (tenant, environment_id, release, revision, digest)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, v.Tenant, v.EnvironmentID, v.Release, v.Revision, d); err != nil {
			return fmt.Errorf("insert release %s artifact: %w", v.Release, err)
		}
	}
	return nil
}

// applyRelease writes back what a release transition changed and records
// its event and wake-up.
func applyRelease(ctx context.Context, tx *tx, c store.ReleaseChange) error {
	r := c.Row
	switch {
	case c.Remove:
		if _, err := tx.ExecContext(ctx, `DELETE FROM releases WHERE tenant = ? AND environment_id = ? AND name = ?`,
			r.Tenant, r.EnvironmentID, r.Name); err != nil {
			return fmt.Errorf("remove release %s: %w", r.Name, err)
		}
	case c.Write:
		if err := writeRelease(ctx, tx, r); err != nil {
			return err
		}
	}
	if res := c.Result; res != nil && !c.Remove {
		if _, err := tx.ExecContext(ctx, `UPDATE release_revisions SET plan = ?, outputs = ?
			WHERE tenant = ? AND environment_id = ? AND release = ? AND revision = ?`,
			encodePlan(res.Plan), encodeOutputs(res.Outputs), r.Tenant, r.EnvironmentID, r.Name, res.Revision); err != nil {
			return fmt.Errorf("write release %s revision %d result: %w", r.Name, res.Revision, err)
		}
	}
	if c.Event != nil {
		tx.record(*c.Event)
	}
	if c.Wakeup != nil {
		tx.wakeup(*c.Wakeup)
	}
	return nil
}

// settleRelease settles the release whose current task t, just finished,
// is; env names t's environment ("" when unknown).
func settleRelease(ctx context.Context, tx *tx, t store.Task, env string) error {
	cur, err := scanRelease(tx.QueryRowContext(ctx, qReleaseByTask, t.Tenant, t.ID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("settle release of task %s: %w", t.ID, err)
	}
	if env == "" {
		if env, err = (envNames{}).get(ctx, tx, t.EnvironmentID); err != nil {
			return err
		}
	}
	return applyRelease(ctx, tx, store.SettleRelease(cur, t, env, t.UpdatedAt))
}

// ApplyRelease makes p.Revision the release's newest revision and
// enqueues its task, unless the newest revision has the same digest.
func (s *Store) ApplyRelease(ctx context.Context, p store.ApplyReleaseParams) (store.Release, store.ReleaseRevision, bool, error) {
	if err := store.ValidateRevision(p); err != nil {
		return store.Release{}, store.ReleaseRevision{}, false, fmt.Errorf("apply release: %w", err)
	}
	now := s.orNow(p.Now)
	in := p.Revision
	var (
		r       store.Release
		rev     store.ReleaseRevision
		created bool
	)
	_, err := s.write(ctx, "apply release", func(tx *tx) error {
		created = false
		env, err := tenantEnv(ctx, tx, in.Tenant, in.EnvironmentID)
		if err != nil {
			return err
		}
		cur, err := getRelease(ctx, tx, in.Tenant, in.EnvironmentID, in.Release)
		exists := err == nil
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		var newest store.ReleaseRevision
		if exists {
			if newest, err = getRevision(ctx, tx, in.Tenant, in.EnvironmentID, in.Release, cur.Revision); err != nil {
				return err
			}
		}
		action, err := store.PlanApply(cur, exists, newest.Digest, in)
		if err != nil {
			return err
		}
		switch action {
		case store.ApplyNothing:
			r, rev = cur.Release, newest
			return nil
		case store.ApplyRetry:
			rev = newest
		default:
			rev = store.NumberRevision(cur, exists, in, now)
		}
		task, err := p.Task(rev)
		if err != nil {
			return fmt.Errorf("release %q: build task: %w", in.Release, err)
		}
		if err := store.CheckReleaseTask(task, in.Tenant, in.EnvironmentID, in.Release); err != nil {
			return err
		}
		task, fresh, err := insertTask(ctx, tx, task, in.CreatedBy, now)
		if err != nil {
			return err
		}
		if !fresh {
			return fmt.Errorf("release %q: task %q: %w", in.Release, task.ID, store.ErrIdempotencyMismatch)
		}
		row := store.PendingRelease(cur, exists, rev, task.ID, now)
		if err := writeRelease(ctx, tx, row); err != nil {
			return err
		}
		r = row.Release
		if action == store.ApplyRevision {
			// After the release row, which the revision references.
			if err := insertRevision(ctx, tx, rev); err != nil {
				return err
			}
			tx.record(store.ReleaseAppliedEvent(rev, env.Name, task.ID))
			created = true
		}
		return nil
	})
	if err != nil {
		return store.Release{}, store.ReleaseRevision{}, false, err
	}
	return r, rev, created, nil
}

// GetRelease returns the tenant's release name of environment envID.
func (s *Store) GetRelease(ctx context.Context, tenant, envID, name string) (store.Release, error) {
	r, err := getRelease(ctx, s.r, tenant, envID, name)
	if err != nil {
		return store.Release{}, fmt.Errorf("get release: %w", err)
	}
	return r.Release, nil
}

// ListReleases lists the tenant's releases by environment and name, of
// envID only when it is set.
func (s *Store) ListReleases(ctx context.Context, tenant, envID string) ([]store.Release, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+releaseColumns+` FROM releases
		WHERE tenant = ? AND (? = '' OR environment_id = ?) ORDER BY environment_id, name`, tenant, envID, envID)
	if err != nil {
		return nil, fmt.Errorf("list releases: %w", err)
	}
	defer rows.Close()
	var out []store.Release
	for rows.Next() {
		r, err := scanRelease(rows)
		if err != nil {
			return nil, fmt.Errorf("list releases: %w", err)
		}
		out = append(out, r.Release)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list releases: %w", err)
	}
	return out, nil
}

// ListReleaseRevisions returns the release's revisions, newest first.
func (s *Store) ListReleaseRevisions(ctx context.Context, tenant, envID, name string) ([]store.ReleaseRevision, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+revisionColumns+` FROM release_revisions
		WHERE tenant = ? AND environment_id = ? AND release = ? ORDER BY revision DESC`, tenant, envID, name)
	if err != nil {
		return nil, fmt.Errorf("list release revisions: %w", err)
	}
	defer rows.Close()
	var out []store.ReleaseRevision
	for rows.Next() {
		v, err := scanRevision(rows)
		if err != nil {
			return nil, fmt.Errorf("list release revisions: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list release revisions: %w", err)
	}
	if len(out) == 0 {
		// Every release has a revision.
		return nil, fmt.Errorf("list release revisions: release %q: %w", name, store.ErrNotFound)
	}
	return out, nil
}

// GetReleaseRevision returns one revision of the release.
func (s *Store) GetReleaseRevision(ctx context.Context, tenant, envID, name string, revision int64) (store.ReleaseRevision, error) {
	v, err := getRevision(ctx, s.r, tenant, envID, name, revision)
	if err != nil {
		return store.ReleaseRevision{}, fmt.Errorf("get release revision: %w", err)
	}
	return v, nil
}

// DeleteRelease requests the release's deletion with the task p.Task
// builds, unless a deletion is already under way.
func (s *Store) DeleteRelease(ctx context.Context, p store.DeleteReleaseParams) (store.Release, error) {
	if p.Task == nil {
		return store.Release{}, fmt.Errorf("delete release %q: no task builder", p.Name)
	}
	now := s.orNow(p.Now)
	var r store.Release
	_, err := s.write(ctx, "delete release", func(tx *tx) error {
		env, err := tenantEnv(ctx, tx, p.Tenant, p.EnvironmentID)
		if err != nil {
			return err
		}
		cur, err := getRelease(ctx, tx, p.Tenant, p.EnvironmentID, p.Name)
		if err != nil {
			return err
		}
		if store.PlanDelete(cur) == store.DeleteNothing {
			r = cur.Release
			return nil
		}
		task, err := p.Task(cur.Release)
		if err != nil {
			return fmt.Errorf("release %q: build task: %w", p.Name, err)
		}
		if err := store.CheckReleaseTask(task, p.Tenant, p.EnvironmentID, p.Name); err != nil {
			return err
		}
		task, fresh, err := insertTask(ctx, tx, task, p.Actor, now)
		if err != nil {
			return err
		}
		if !fresh {
			return fmt.Errorf("release %q: task %q: %w", p.Name, task.ID, store.ErrIdempotencyMismatch)
		}
		c := store.DeletingRelease(cur, env.Name, task.ID, p.Actor, now)
		r = c.Row.Release
		return applyRelease(ctx, tx, c)
	})
	if err != nil {
		return store.Release{}, err
	}
	return r, nil
}

// ListDesiredReleases returns the applied revision of each release of the
// environment that has one and is not being deleted, by name.
func (s *Store) ListDesiredReleases(ctx context.Context, tenant, envID string) ([]store.DesiredRelease, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+qualify(releaseColumns, "r")+`, `+qualify(revisionColumns, "v")+`
		FROM releases r JOIN release_revisions v ON v.tenant = r.tenant AND v.environment_id = r.environment_id
			AND v.release = r.name AND v.revision = r.applied_revision
		WHERE r.tenant = ? AND r.environment_id = ? AND r.applied_revision > 0 AND r.delete_requested = 0
		ORDER BY r.name`, tenant, envID)
	if err != nil {
		return nil, fmt.Errorf("list desired releases: %w", err)
	}
	defer rows.Close()
	var out []store.DesiredRelease
	for rows.Next() {
		var (
			rx releaseScan
			vx revisionScan
		)
		if err := rows.Scan(append(rx.dest(), vx.dest()...)...); err != nil {
			return nil, fmt.Errorf("list desired releases: %w", err)
		}
		r, err := rx.row()
		if err != nil {
			return nil, fmt.Errorf("list desired releases: %w", err)
		}
		v, err := vx.revision()
		if err != nil {
			return nil, fmt.Errorf("list desired releases: %w", err)
		}
		out = append(out, store.DesiredRelease{Release: r.Release, Revision: v})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list desired releases: %w", err)
	}
	return out, nil
}

// RecordDrift stores an agent's drift report for the applied revision.
func (s *Store) RecordDrift(ctx context.Context, p store.DriftParams) (store.Release, error) {
	p.Now = s.orNow(p.Now)
	var r store.Release
	_, err := s.write(ctx, "record drift", func(tx *tx) error {
		env, err := tenantEnv(ctx, tx, p.Tenant, p.EnvironmentID)
		if err != nil {
			return err
		}
		cur, err := getRelease(ctx, tx, p.Tenant, p.EnvironmentID, p.Release)
		if err != nil {
			return err
		}
		c := store.RecordDrift(cur, env.Name, p)
		r = c.Row.Release
		return applyRelease(ctx, tx, c)
	})
	if err != nil {
		return store.Release{}, err
	}
	return r, nil
}

// TaskCounts counts the environment's unfinished tasks and those failed
// since failedSince.
func (s *Store) TaskCounts(ctx context.Context, tenant, envID string, failedSince time.Time) (active, failed int, err error) {
	err = s.r.QueryRowContext(ctx, `SELECT
		coalesce(sum(CASE WHEN state IN ('queued', 'leased') THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN state = 'failed' AND finished_at >= ? THEN 1 ELSE 0 END), 0)
		FROM tasks WHERE tenant = ? AND environment_id = ?`,
		store.Micro(failedSince).UnixMicro(), tenant, envID).Scan(&active, &failed)
	if err != nil {
		return 0, 0, fmt.Errorf("task counts: %w", err)
	}
	return active, failed, nil
}

// ApproveRelease enqueues the task that applies the plan the release's
// newest revision awaits, if p names that plan.
func (s *Store) ApproveRelease(ctx context.Context, p store.ApproveReleaseParams) (store.Release, store.Task, error) {
	if err := store.ValidateApprove(p); err != nil {
		return store.Release{}, store.Task{}, err
	}
	now := s.orNow(p.Now)
	var (
		r    store.Release
		task store.Task
	)
	_, err := s.write(ctx, "approve release", func(tx *tx) error {
		env, err := tenantEnv(ctx, tx, p.Tenant, p.EnvironmentID)
		if err != nil {
			return err
		}
		cur, err := getRelease(ctx, tx, p.Tenant, p.EnvironmentID, p.Name)
		if err != nil {
			return err
		}
		rev, err := getRevision(ctx, tx, p.Tenant, p.EnvironmentID, p.Name, cur.Revision)
		if err != nil {
			return err
		}
		if err := store.PlanApprove(cur, rev, p); err != nil {
			return err
		}
		built, err := p.Task(rev)
		if err != nil {
			return fmt.Errorf("release %q: build task: %w", p.Name, err)
		}
		if err := store.CheckReleaseTask(built, p.Tenant, p.EnvironmentID, p.Name); err != nil {
			return err
		}
		inserted, fresh, err := insertTask(ctx, tx, built, p.Actor, now)
		if err != nil {
			return err
		}
		if !fresh {
			return fmt.Errorf("release %q: task %q: %w", p.Name, inserted.ID, store.ErrIdempotencyMismatch)
		}
		row := store.PendingRelease(cur, true, rev, inserted.ID, now)
		if err := writeRelease(ctx, tx, row); err != nil {
			return err
		}
		tx.record(store.ReleaseApprovedEvent(row.Release, env.Name, p.Actor, p.PlanDigest, inserted.ID, now))
		r, task = row.Release, inserted
		return nil
	})
	if err != nil {
		return store.Release{}, store.Task{}, err
	}
	return r, task, nil
}
