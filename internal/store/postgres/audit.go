package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/outposthq/outpost/internal/audit"
	"github.com/outposthq/outpost/internal/store"
)

// AppendAudit appends e to its tenant's chain and returns it sealed.
func (s *Store) AppendAudit(ctx context.Context, e audit.Event) (audit.Event, error) {
	if e.Details == "" {
		e.Details = "{}"
	}
	tx, err := s.write(ctx, "append audit", func(tx *tx) error {
		tx.record(e)
		return nil
	})
	if err != nil {
		return audit.Event{}, err
	}
	return tx.sealed[0], nil
}

// ListAudit returns the tenant's events with Seq > afterSeq, ascending,
// only those of action when it is set; limit is bounded by store.PageLimit.
func (s *Store) ListAudit(ctx context.Context, tenant string, afterSeq int64, limit int, action string) ([]audit.Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, time, tenant, environment, actor, action, subject, details, prev_hash, hash
		FROM audit_events WHERE tenant = $1 AND seq > $2 AND ($3 = '' OR action = $3) ORDER BY seq LIMIT $4`,
		tenant, afterSeq, action, store.PageLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (audit.Event, error) {
		var e audit.Event
		err := r.Scan(&e.Seq, &e.Time, &e.Tenant, &e.Environment, &e.Actor, &e.Action, &e.Subject, &e.Details, &e.PrevHash, &e.Hash)
		e.Time = e.Time.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return out, nil
}
