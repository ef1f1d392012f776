package sqlite

import (
	"context"
	"fmt"
	"time"

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
	rows, err := s.r.QueryContext(ctx, `SELECT seq, time, tenant, environment, actor, action, subject, details, prev_hash, hash
		FROM audit_events WHERE tenant = ? AND seq > ? AND (? = '' OR action = ?) ORDER BY seq LIMIT ?`,
		tenant, afterSeq, action, action, store.PageLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	var out []audit.Event
	for rows.Next() {
		var (
			e  audit.Event
			at int64
		)
		if err := rows.Scan(&e.Seq, &at, &e.Tenant, &e.Environment, &e.Actor, &e.Action, &e.Subject, &e.Details, &e.PrevHash, &e.Hash); err != nil {
			return nil, fmt.Errorf("list audit: %w", err)
		}
		e.Time = time.UnixMicro(at).UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return out, nil
}
