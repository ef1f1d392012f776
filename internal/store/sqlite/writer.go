package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/outposthq/outpost/internal/audit"
	"github.com/outposthq/outpost/internal/store"
)

// Group commit. SQLite has one writer, and most of a write transaction's
// cost on a busy hub is fixed: BEGIN, reading each tenant's audit head,
// and at COMMIT writing every page the transaction touched to the WAL. The
// task lifecycle touches the same few pages every time (the newest pages
// of tasks, its indexes, audit_events and the audit head), so one writer
// goroutine runs whatever writes are waiting as one transaction:
//
//   - each operation runs inside its own SAVEPOINT; one that fails is rolled
//     back to it and gets its own error, while the others carry on;
//   - audit events are sealed in the order the operations run, after a
//     per-tenant head kept in memory for the batch (read once from
//     audit_heads, written back once before COMMIT), so the chain is the
//     same one the operations would have built one by one; the events of an
//     operation that is rolled back are forgotten with it;
//   - every caller is answered after COMMIT (or at once with its own error),
//     and wake-ups are published after COMMIT, as before;
//   - nothing waits to fill a batch: an idle hub commits each write alone,
//     a busy one commits what arrived while the last batch ran.
//
// If a statement fails in a way that ends the whole transaction (SQLite
// rolls back by itself on I/O errors, a full disk or memory exhaustion),
// every operation of the batch fails with that error, exactly as each
// would have alone.

// defaultMaxBatch bounds how many writes one transaction commits.
const defaultMaxBatch = 128

// errClosed is returned by writes issued after Close.
var errClosed = errors.New("sqlite store is closed")

// writeOp is one write call waiting for the writer.
type writeOp struct {
	ctx  context.Context
	name string
	fn   func(*tx) error

	// Set by the writer before done is closed.
	t   *tx
	err error

	done chan struct{}
	// taken and cancelled are guarded by writer.mu: the writer skips an
	// op whose caller gave up before it was taken.
	taken, cancelled bool
}

// writer queues write calls for the writer goroutine.
type writer struct {
	mu      sync.Mutex
	queue   []*writeOp
	closed  bool
	signal  chan struct{} // capacity 1: the queue is not empty
	stopped chan struct{} // closed when the writer goroutine returns
	max     int
	// onBatch, when set (tests), is called with the number of operations
	// of each transaction before it begins.
	onBatch func(n int)
}

func newWriter(max int) *writer {
	return &writer{signal: make(chan struct{}, 1), stopped: make(chan struct{}), max: max}
}

// write runs fn in a write transaction, appends the audit events fn
// recorded, commits, and then publishes the wake-ups. Errors are prefixed
// with op. fn may share its transaction with other writes; it sees their
// changes, they see its changes, and it runs alone in its savepoint. The
// statements fn runs through tx are not interrupted by ctx (an interrupt
// would end the shared transaction): ctx is checked before fn starts, and
// a caller whose ctx ends while its write is queued gets ctx's error and
// its write never runs.
func (s *Store) write(ctx context.Context, op string, fn func(*tx) error) (*tx, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	o := &writeOp{ctx: ctx, name: op, fn: fn, done: make(chan struct{})}
	w := s.writer
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", op, errClosed)
	}
	w.queue = append(w.queue, o)
	select {
	case w.signal <- struct{}{}:
	default:
	}
	w.mu.Unlock()
	select {
	case <-o.done:
	case <-ctx.Done():
		w.mu.Lock()
		if !o.taken {
			o.cancelled = true
			w.mu.Unlock()
			return nil, fmt.Errorf("%s: %w", op, ctx.Err())
		}
		w.mu.Unlock()
		// The op is running: its outcome is about to be known.
		<-o.done
	}
	if o.err != nil {
		return nil, o.err
	}
	return o.t, nil
}

// take removes up to max queued operations, oldest first.
func (w *writer) take() []*writeOp {
	w.mu.Lock()
	defer w.mu.Unlock()
	var batch []*writeOp
	n := 0
	for n < len(w.queue) && len(batch) < w.max {
		o := w.queue[n]
		n++
		if o.cancelled {
			continue
		}
		o.taken = true
		batch = append(batch, o)
	}
	rest := copy(w.queue, w.queue[n:])
	clear(w.queue[rest:])
	w.queue = w.queue[:rest]
	if rest > 0 && !w.closed {
		select {
		case w.signal <- struct{}{}:
		default:
		}
	}
	return batch
}

// queued is how many operations wait for the writer (tests).
func (w *writer) queued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

// close refuses new writes and fails the queued ones; run returns once
// the batch it is committing, if any, is done.
func (w *writer) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	queue := w.queue
	w.queue = nil
	for _, o := range queue {
		o.taken = true
	}
	close(w.signal)
	w.mu.Unlock()
	for _, o := range queue {
		o.err = fmt.Errorf("%s: %w", o.name, errClosed)
		close(o.done)
	}
	<-w.stopped
}

// runWriter commits queued writes until the writer is closed.
func (s *Store) runWriter() {
	defer close(s.writer.stopped)
	for range s.writer.signal {
		if batch := s.writer.take(); len(batch) > 0 {
			s.commitBatch(batch)
		}
	}
}

// errBatchBroken marks a failure that ends the whole transaction.
var errBatchBroken = errors.New("transaction ended")

// commitBatch runs batch in one transaction and answers every caller.
func (s *Store) commitBatch(batch []*writeOp) {
	var run []*writeOp
	for _, o := range batch {
		if err := o.ctx.Err(); err != nil {
			o.err = fmt.Errorf("%s: %w", o.name, err)
			close(o.done)
			continue
		}
		run = append(run, o)
	}
	if len(run) == 0 {
		return
	}
	if s.writer.onBatch != nil {
		s.writer.onBatch(len(run))
	}
	failAll := func(ops []*writeOp, format string, err error) {
		for _, o := range ops {
			o.err = fmt.Errorf("%s: "+format, o.name, err)
			close(o.done)
		}
	}
	// The transaction belongs to no caller: a caller's cancellation must
	// not interrupt the others' statements.
	ctx := context.Background()
	sqlTx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		failAll(run, "begin: %w", err)
		return
	}
	heads := chainHeads{}
	alone := len(run) == 1
	var ok []*writeOp
	for i, o := range run {
		t := &tx{Tx: sqlTx, stmts: s.ws}
		err := s.runOp(ctx, t, heads, o, !alone)
		if err == nil {
			o.t = t
			ok = append(ok, o)
			continue
		}
		if alone || errors.Is(err, errBatchBroken) {
			_ = sqlTx.Rollback()
			o.err = fmt.Errorf("%s: %w", o.name, err)
			close(o.done)
			failAll(ok, "%w", err)
			failAll(run[i+1:], "%w", err)
			return
		}
		o.err = fmt.Errorf("%s: %w", o.name, err)
		close(o.done)
	}
	if len(ok) == 0 {
		_ = sqlTx.Rollback()
		return
	}
	if err := heads.save(ctx, sqlTx, s.ws); err != nil {
		_ = sqlTx.Rollback()
		failAll(ok, "%w", err)
		return
	}
	if err := sqlTx.Commit(); err != nil {
		failAll(ok, "commit: %w", err)
		return
	}
	var wakeups []store.Wakeup
	for _, o := range ok {
		wakeups = append(wakeups, o.t.wakeups...)
	}
	s.wake.publish(wakeups)
	for _, o := range ok {
		close(o.done)
	}
}

// runOp runs o.fn and appends its audit events, inside a savepoint when
// the transaction holds other operations. An error wrapping
// errBatchBroken means the transaction can no longer be used.
func (s *Store) runOp(ctx context.Context, t *tx, heads chainHeads, o *writeOp, savepoint bool) error {
	if savepoint {
		if _, err := t.ExecContext(ctx, qSavepoint); err != nil {
			return fmt.Errorf("%w: savepoint: %w", errBatchBroken, err)
		}
	}
	err := o.fn(t)
	var moved chainHeads
	if err == nil {
		moved, err = s.appendEvents(ctx, t, heads)
	}
	if err != nil {
		if savepoint {
			if _, rerr := t.ExecContext(ctx, qRollbackTo); rerr != nil {
				return fmt.Errorf("%w: %w (rollback to savepoint: %w)", errBatchBroken, err, rerr)
			}
			if _, rerr := t.ExecContext(ctx, qRelease); rerr != nil {
				return fmt.Errorf("%w: %w (release savepoint: %w)", errBatchBroken, err, rerr)
			}
		}
		return err
	}
	if savepoint {
		if _, err := t.ExecContext(ctx, qRelease); err != nil {
			return fmt.Errorf("%w: release savepoint: %w", errBatchBroken, err)
		}
	}
	for tenant, h := range moved {
		heads[tenant] = h
	}
	return nil
}

// chainHeads holds, per tenant, the last event sealed in this transaction
// (or read from audit_heads): the head the next event links to.
type chainHeads map[string]audit.Event

// head returns the tenant's head as this transaction sees it.
func (h chainHeads) head(ctx context.Context, t *tx, tenant string) (audit.Event, error) {
	if e, ok := h[tenant]; ok {
		return e, nil
	}
	var head audit.Event
	err := t.QueryRowContext(ctx, qAuditHead, tenant).Scan(&head.Seq, &head.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		return audit.Event{}, fmt.Errorf("append audit: tenant %q: %w", tenant, store.ErrNotFound)
	}
	if err != nil {
		return audit.Event{}, fmt.Errorf("append audit: read head: %w", err)
	}
	return head, nil
}

// save writes every head that moved back to audit_heads.
func (h chainHeads) save(ctx context.Context, sqlTx *sql.Tx, ws stmts) error {
	for tenant, e := range h {
		if _, err := sqlTx.StmtContext(ctx, ws[qUpdateAuditHead]).ExecContext(ctx, e.Seq, e.Hash, tenant); err != nil {
			return fmt.Errorf("append audit: update head: %w", err)
		}
	}
	return nil
}

// appendEvents seals t's events after their tenant's head and inserts
// them; it returns the heads they moved, for the caller to keep once the
// operation is kept. It runs last in the operation.
func (s *Store) appendEvents(ctx context.Context, t *tx, heads chainHeads) (chainHeads, error) {
	var moved chainHeads
	for _, e := range t.events {
		if e.Time.IsZero() {
			e.Time = s.now()
		}
		head, ok := moved[e.Tenant]
		if !ok {
			var err error
			if head, err = heads.head(ctx, t, e.Tenant); err != nil {
				return nil, err
			}
		}
		e.Seal(head)
		if _, err := t.ExecContext(ctx, qInsertAudit,
			e.Tenant, e.Seq, e.Time.UnixMicro(), e.Environment, e.Actor, e.Action, e.Subject, e.Details, e.PrevHash, e.Hash); err != nil {
			return nil, fmt.Errorf("append audit: insert: %w", err)
		}
		if moved == nil {
			moved = chainHeads{}
		}
		moved[e.Tenant] = e
		t.sealed = append(t.sealed, e)
	}
	return moved, nil
}
