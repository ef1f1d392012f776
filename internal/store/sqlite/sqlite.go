package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/outposthq/outpost/internal/audit"
	"github.com/outposthq/outpost/internal/store"
	"github.com/outposthq/outpost/internal/store/migrations"
)

// Store is the SQLite implementation of store.Store. It is safe for
// concurrent use; it assumes it is the only writer process on its file.
type Store struct {
	w     *sql.DB // one connection, every write transaction
	ws    stmts   // prepared on w
	r     reader  // query-only connections
	log   *slog.Logger
	clock func() time.Time
	wake  *broker
	// writer runs every write transaction (group commit, writer.go).
	writer *writer

	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if missing) the database at o.Path, applies pending
// migrations and returns the store.
func Open(ctx context.Context, o Options) (*Store, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	if err := createPrivate(o.Path); err != nil {
		return nil, err
	}
	busy := o.BusyTimeout.Milliseconds()
	common := url.Values{}
	common.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy))
	common.Add("_pragma", "foreign_keys(1)")

	wq := url.Values{"_pragma": append([]string(nil), common["_pragma"]...)}
	wq.Add("_pragma", "journal_mode(WAL)")
	wq.Add("_pragma", "synchronous(NORMAL)")
	wq.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite", o.Path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite open: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite open %s: %w", o.Path, err)
	}
	if err := migrations.SQLite(ctx, w, o.Logger); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite open: %w", err)
	}

	rq := url.Values{"_pragma": append([]string(nil), common["_pragma"]...)}
	rq.Add("_pragma", "query_only(1)")
	r, err := sql.Open("sqlite", o.Path+"?"+rq.Encode())
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite open: %w", err)
	}
	r.SetMaxOpenConns(o.ReadConns)
	r.SetMaxIdleConns(o.ReadConns)
	if err := r.PingContext(ctx); err != nil {
		_ = w.Close()
		_ = r.Close()
		return nil, fmt.Errorf("sqlite open %s: %w", o.Path, err)
	}
	ws, err := prepareAll(ctx, w, writeQueries)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite open: %w", err), w.Close(), r.Close())
	}
	rs, err := prepareAll(ctx, r, readQueries)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite open: %w", err), ws.close(), w.Close(), r.Close())
	}
	s := &Store{w: w, ws: ws, r: reader{DB: r, stmts: rs}, log: o.Logger, clock: o.Now, wake: newBroker(), writer: newWriter(o.MaxBatch)}
	go s.runWriter()
	return s, nil
}

// createPrivate creates an empty database file at path, readable by its
// owner only, unless a file is there already. The database holds the hub's
// signing key and token hashes; SQLite gives the -wal and -shm files it
// creates beside it the same mode.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // the operator configures the database path
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlite open: create %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sqlite open: create %s: %w", path, err)
	}
	return nil
}

// Close closes both pools and ends every ListenWakeups call.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.writer.close()
		s.wake.close()
		err = errors.Join(s.r.stmts.close(), s.ws.close(), s.r.Close(), s.w.Close())
	})
	return err
}

func (s *Store) now() time.Time { return store.Micro(s.clock()) }

// orNow returns t, or the store's clock when t is zero, truncated to the
// microsecond.
func (s *Store) orNow(t time.Time) time.Time {
	if t.IsZero() {
		return s.now()
	}
	return store.Micro(t)
}

// tx is one write transaction: the audit events and wake-ups it collects
// are appended at its end and published after its commit.
type tx struct {
	*sql.Tx
	stmts   stmts
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

// isUnique reports whether err is a unique or primary key violation.
func isUnique(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// micros encodes t for a nullable time column.
func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// fromMicros decodes a nullable time column.
func fromMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMicro(n.Int64).UTC()
}

// nonNil keeps NOT NULL blob columns from receiving a nil slice.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
