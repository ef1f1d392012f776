package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/outposthq/outpost/internal/audit"
	"github.com/outposthq/outpost/internal/store"
	"github.com/outposthq/outpost/internal/store/migrations"
)

// Store is the PostgreSQL implementation of store.Store. Several Stores, in
// one process or in several hub replicas, may share one database (and
// schema).
type Store struct {
	pool     *pgxpool.Pool
	connCfg  *pgx.ConnConfig // for the dedicated LISTEN connections
	schema   string
	log      *slog.Logger
	clock    func() time.Time
	closed   chan struct{}
	closeOne sync.Once
}

var _ store.Store = (*Store)(nil)

// Open connects to the database, creates o.Schema if it is missing,
// applies pending migrations (one replica at a time) and returns the store.
func Open(ctx context.Context, o Options) (*Store, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	cfg, err := pgxpool.ParseConfig(o.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres open: parse URL: %w", err)
	}
	if o.Schema != "" {
		if err := createSchema(ctx, cfg.ConnConfig.Copy(), o.Schema); err != nil {
			return nil, err
		}
		cfg.ConnConfig.RuntimeParams["search_path"] = o.Schema
	}
	db := stdlib.OpenDB(*cfg.ConnConfig.Copy())
	err = migrations.Postgres(ctx, db, o.Schema, o.Logger)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("postgres open: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres open: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres open: %w", err)
	}
	return &Store{
		pool: pool, connCfg: cfg.ConnConfig.Copy(), schema: o.Schema,
		log: o.Logger, clock: o.Now, closed: make(chan struct{}),
	}, nil
}

// createSchema creates schema unless it exists; replicas racing to create
// it all succeed.
func createSchema(ctx context.Context, cfg *pgx.ConnConfig, schema string) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("postgres open: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	_, err = conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "42P06") {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("postgres open: create schema %s: %w", schema, err)
	}
	return nil
}

// Close closes the pool and ends every ListenWakeups call.
func (s *Store) Close() error {
	s.closeOne.Do(func() {
		close(s.closed)
		s.pool.Close()
	})
	return nil
}

func (s *Store) now() time.Time { return store.Micro(s.clock()) }

func (s *Store) orNow(t time.Time) time.Time {
	if t.IsZero() {
		return s.now()
	}
	return store.Micro(t)
}

// tx is one write transaction: the audit events and wake-ups it collects
// are appended and notified at its end.
type tx struct {
	pgx.Tx
	events  []audit.Event
	sealed  []audit.Event
	wakeups []store.Wakeup
}

func (t *tx) record(e audit.Event) { t.events = append(t.events, e) }

func (t *tx) wakeup(w store.Wakeup) {
	for _, x := range t.wakeups {
		if x == w {
			return
		}
	}
	t.wakeups = append(t.wakeups, w)
}

// write runs fn in a READ COMMITTED transaction, appends the audit events
// fn recorded, commits, and then sends the wake-ups. Errors are prefixed
// with op.
func (s *Store) write(ctx context.Context, op string, fn func(*tx) error) (*tx, error) {
	pgTx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: begin: %w", op, err)
	}
	t := &tx{Tx: pgTx}
	defer func() { _ = pgTx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(t); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := s.appendEvents(ctx, t); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := pgTx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("%s: commit: %w", op, err)
	}
	s.notify(ctx, op, t.wakeups)
	return t, nil
}

// notifyTimeout bounds sending the wake-ups of a committed write.
const notifyTimeout = 5 * time.Second

// notify sends wake-ups with pg_notify, after their change committed: a
// NOTIFY inside the transaction would make its commit take the database's
// global notify lock, serializing every notifying commit across replicas.
// The change is already stored, so a failure is only logged; listeners
// lose a wake-up, which agents survive by claiming on an interval. The
// caller's cancellation does not stop it, for the same reason.
func (s *Store) notify(ctx context.Context, op string, wakeups []store.Wakeup) {
	if len(wakeups) == 0 {
		return
	}
	payloads := make([]string, 0, len(wakeups))
	for _, w := range wakeups {
		b, err := json.Marshal(wakeupPayload{Schema: s.schema, Tenant: w.Tenant, EnvironmentID: w.EnvironmentID, CancelTaskID: w.CancelTaskID})
		if err != nil {
			s.log.ErrorContext(ctx, "cannot encode a wake-up", "op", op, "error", err)
			return
		}
		payloads = append(payloads, string(b))
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notifyTimeout)
	defer cancel()
	// One statement, in one implicit transaction: the wake-ups go out in
	// order and together.
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS u(p, n) ORDER BY n`,
		wakeupChannel, payloads); err != nil {
		s.log.WarnContext(ctx, "wake-ups not sent; agents will claim on their interval", "op", op, "wakeups", len(wakeups), "error", err)
	}
}

// appendEvents seals t's events after their tenant's chain head, which it
// locks here, at the end of the transaction, so concurrent writers of one
// tenant wait on it as briefly as possible.
func (s *Store) appendEvents(ctx context.Context, t *tx) error {
	for _, e := range t.events {
		if e.Time.IsZero() {
			e.Time = s.now()
		}
		var head audit.Event
		err := t.QueryRow(ctx, `SELECT seq, hash FROM audit_heads WHERE tenant = $1 FOR UPDATE`, e.Tenant).Scan(&head.Seq, &head.Hash)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("append audit: tenant %q: %w", e.Tenant, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("append audit: lock head: %w", err)
		}
		e.Seal(head)
		if _, err := t.Exec(ctx, `INSERT INTO audit_events
			(tenant, seq, time, environment, actor, action, subject, details, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			e.Tenant, e.Seq, e.Time, e.Environment, e.Actor, e.Action, e.Subject, e.Details, e.PrevHash, e.Hash); err != nil {
			return fmt.Errorf("append audit: insert: %w", err)
		}
		if _, err := t.Exec(ctx, `UPDATE audit_heads SET seq = $1, hash = $2 WHERE tenant = $3`, e.Seq, e.Hash, e.Tenant); err != nil {
			return fmt.Errorf("append audit: update head: %w", err)
		}
		t.sealed = append(t.sealed, e)
	}
	return nil
}

// querier is what both the pool and a transaction offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func isUnique(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// ts encodes t for a nullable timestamptz column.
func ts(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: store.Micro(t), Valid: true}
}

// fromTS decodes a nullable timestamptz column.
func fromTS(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// nonNil keeps NOT NULL columns from receiving a nil slice (pgx sends
// nil as NULL).
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// orNil turns an empty list read back into nil, as the other store does.
func orNil(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	return l
}
