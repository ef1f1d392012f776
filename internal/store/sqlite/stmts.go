package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// The hot queries: every enqueue, claim, renewal, report and agent call
// runs some of them. They are prepared once per pool at Open, so SQLite
// parses and plans them once instead of at every call.
const (
	qGetTask  = `SELECT ` + taskColumns + ` FROM tasks WHERE tenant = ? AND id = ?`
	qGetEnv   = `SELECT ` + envColumns + ` FROM environments WHERE id = ?`
	qGetAgent = `SELECT ` + agentColumns + ` FROM agents WHERE id = ?`
	// Every operator call reads its token, every enqueue its environment.
	qGetAPIToken  = `SELECT id, tenant, name, hash, created_at, expires_at FROM api_tokens WHERE hash = ?` //nolint:gosec // a query by token hash, no credential
	qGetEnvByName = `SELECT ` + envColumns + ` FROM environments WHERE tenant = ? AND name = ?`
	// qQueueEntries reads only unfinished tasks, through the partial index
	// tasks_unfinished: the repeated state IN (…) is its WHERE, which lets
	// SQLite use it, and INDEXED BY keeps the planner from walking every
	// task the environment ever had through tasks_env_seq instead.
	qQueueEntries = `SELECT id, state, attempt, kind, conflict_keys, not_before, deadline FROM (
			SELECT id, state, attempt, kind, conflict_keys, not_before, deadline, 0 AS part, seq FROM tasks INDEXED BY tasks_unfinished
			WHERE tenant = ? AND environment_id = ? AND state = 'leased' AND state IN ('queued', 'leased')
			UNION ALL
			SELECT * FROM (SELECT id, state, attempt, kind, conflict_keys, not_before, deadline, 1 AS part, seq FROM tasks INDEXED BY tasks_unfinished
				WHERE tenant = ? AND environment_id = ? AND state = 'queued' AND state IN ('queued', 'leased') ORDER BY seq LIMIT ?)
		) ORDER BY part, seq`
	qUpdateTask = `UPDATE tasks SET state = ?, attempt = ?, agent_id = ?, updated_at = ?,
			finished_at = ?, lease_expires_at = ?, not_before = ?, cancel_requested = ?, result = ?, error = ?
			WHERE tenant = ? AND id = ?`
	qInsertTask = `INSERT INTO tasks (tenant, id, environment_id, kind, spec, conflict_keys, artifacts,
			max_attempts, deadline, state, attempt, created_at, updated_at, not_before)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?) RETURNING seq`
	qRenewLease = `UPDATE tasks SET lease_expires_at = ?, updated_at = ? WHERE tenant = ? AND id = ?`
	qAuditHead  = `SELECT seq, hash FROM audit_heads WHERE tenant = ?`
	// Every task that finishes looks for the release it carries.
	qReleaseByTask = `SELECT ` + releaseColumns + ` FROM releases WHERE tenant = ? AND task_id = ?`
	qInsertAudit   = `INSERT INTO audit_events
			(tenant, seq, time, environment, actor, action, subject, details, prev_hash, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qUpdateAuditHead = `UPDATE audit_heads SET seq = ?, hash = ? WHERE tenant = ?`
	// One savepoint per operation of a group commit (writer.go).
	qSavepoint  = `SAVEPOINT op`
	qRelease    = `RELEASE op`
	qRollbackTo = `ROLLBACK TO op`
)

var (
	// writeQueries run in write transactions.
	writeQueries = []string{qGetTask, qGetEnv, qQueueEntries, qUpdateTask, qInsertTask, qRenewLease, qAuditHead, qInsertAudit, qUpdateAuditHead,
		qReleaseByTask, qSavepoint, qRelease, qRollbackTo}
	// readQueries run on the read pool.
	readQueries = []string{qGetTask, qGetEnv, qGetAgent, qGetAPIToken, qGetEnvByName}
)

// stmts holds one pool's prepared statements by query text. It is filled
// at Open and only read afterwards.
type stmts map[string]*sql.Stmt

// prepareAll prepares queries on db. It must run while no transaction
// holds db's connections: the writer pool has a single one.
func prepareAll(ctx context.Context, db *sql.DB, queries []string) (stmts, error) {
	s := stmts{}
	for _, q := range queries {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("prepare: %w", err), s.close())
		}
		s[q] = st
	}
	return s, nil
}

func (s stmts) close() error {
	var errs []error
	for _, st := range s {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// ExecContext, QueryContext and QueryRowContext run a prepared statement
// in the transaction when query is one, and prepare query otherwise. The
// transaction runs on the writer's only connection, where the statement
// was prepared, so database/sql reuses it. They ignore the caller's
// context: the transaction may serve several callers, and a cancelled
// statement would end it for all of them.
func (t *tx) ExecContext(_ context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmts[query]; st != nil {
		return t.Tx.StmtContext(context.Background(), st).ExecContext(context.Background(), args...)
	}
	return t.Tx.ExecContext(context.Background(), query, args...)
}

func (t *tx) QueryContext(_ context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmts[query]; st != nil {
		return t.Tx.StmtContext(context.Background(), st).QueryContext(context.Background(), args...)
	}
	return t.Tx.QueryContext(context.Background(), query, args...)
}

func (t *tx) QueryRowContext(_ context.Context, query string, args ...any) *sql.Row {
	if st := t.stmts[query]; st != nil {
		return t.Tx.StmtContext(context.Background(), st).QueryRowContext(context.Background(), args...)
	}
	return t.Tx.QueryRowContext(context.Background(), query, args...)
}

// reader is the read pool with its prepared statements.
type reader struct {
	*sql.DB
	stmts stmts
}

func (r reader) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := r.stmts[query]; st != nil {
		return st.ExecContext(ctx, args...)
	}
	return r.DB.ExecContext(ctx, query, args...)
}

func (r reader) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := r.stmts[query]; st != nil {
		return st.QueryContext(ctx, args...)
	}
	return r.DB.QueryContext(ctx, query, args...)
}

func (r reader) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := r.stmts[query]; st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return r.DB.QueryRowContext(ctx, query, args...)
}
