package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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
		b, err := json.Marshal(wakeupPayload{
			Schema: s.schema, Tenant: w.Tenant, EnvironmentID: w.EnvironmentID, CancelTaskID: w.CancelTaskID, DesiredState: w.DesiredState,
		})
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

// appendEvents seals t's events after their tenants' chain heads and
// inserts them. The heads are locked here, at the end of the transaction,
// so concurrent writers of one tenant wait on them as briefly as possible:
// from the lock to the commit there is one more round trip, a single
// statement that inserts every event and moves every head, whatever the
// number of events.
func (s *Store) appendEvents(ctx context.Context, t *tx) error {
	if len(t.events) == 0 {
		return nil
	}
	var tenants []string
	for _, e := range t.events {
		if !slices.Contains(tenants, e.Tenant) {
			tenants = append(tenants, e.Tenant)
		}
	}
	// Sorted, so that two transactions of several tenants lock their heads
	// in the same order.
	rows, err := t.Query(ctx, `SELECT tenant, seq, hash FROM audit_heads WHERE tenant = ANY($1) ORDER BY tenant FOR UPDATE`, tenants)
	if err != nil {
		return fmt.Errorf("append audit: lock head: %w", err)
	}
	heads := make(map[string]audit.Event, len(tenants))
	for rows.Next() {
		var h audit.Event
		if err := rows.Scan(&h.Tenant, &h.Seq, &h.Hash); err != nil {
			rows.Close()
			return fmt.Errorf("append audit: lock head: %w", err)
		}
		heads[h.Tenant] = h
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("append audit: lock head: %w", err)
	}
	n := len(t.events)
	var (
		cols    [8][]string
		seqs    = make([]int64, 0, n)
		times   = make([]time.Time, 0, n)
		headTen = make([]string, 0, len(heads))
		headSeq = make([]int64, 0, len(heads))
		headHsh = make([]string, 0, len(heads))
	)
	for _, e := range t.events {
		head, ok := heads[e.Tenant]
		if !ok {
			return fmt.Errorf("append audit: tenant %q: %w", e.Tenant, store.ErrNotFound)
		}
		if e.Time.IsZero() {
			e.Time = s.now()
		}
		e.Seal(head)
		heads[e.Tenant] = e
		for i, v := range []string{e.Tenant, e.Environment, e.Actor, e.Action, e.Subject, e.Details, e.PrevHash, e.Hash} {
			cols[i] = append(cols[i], v)
		}
		seqs = append(seqs, e.Seq)
		times = append(times, e.Time)
		t.sealed = append(t.sealed, e)
	}
	for _, tenant := range tenants {
		h := heads[tenant]
		headTen, headSeq, headHsh = append(headTen, tenant), append(headSeq, h.Seq), append(headHsh, h.Hash)
	}
	if _, err := t.Exec(ctx, `WITH ins AS (
			INSERT INTO audit_events (tenant, seq, time, environment, actor, action, subject, details, prev_hash, hash)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])
		)
		UPDATE audit_heads h SET seq = v.seq, hash = v.hash
		FROM unnest($11::text[], $12::bigint[], $13::text[]) AS v(tenant, seq, hash) WHERE h.tenant = v.tenant`,
		cols[0], seqs, times, cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7],
		headTen, headSeq, headHsh); err != nil {
		return fmt.Errorf("append audit: insert: %w", err)
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
