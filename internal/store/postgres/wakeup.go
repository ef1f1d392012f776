package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outposthq/outpost/internal/backoff"
	"github.com/outposthq/outpost/internal/store"
)

// wakeupChannel is the NOTIFY channel every replica listens on.
const wakeupChannel = "outpost_wakeup"

// wakeupPayload is a wake-up on the wire. Schema keeps stores sharing a
// database but not a schema from hearing each other.
type wakeupPayload struct {
	Schema        string `json:"s,omitempty"`
	Tenant        string `json:"t"`
	EnvironmentID string `json:"e"`
	CancelTaskID  string `json:"c,omitempty"`
	DesiredState  bool   `json:"d,omitempty"`
}

// reconnect paces the listener's reconnections after its connection drops.
var reconnect = backoff.Policy{Base: 100 * time.Millisecond, Max: 30 * time.Second, Jitter: true}

// ListenWakeups calls fn for every wake-up any replica's store on this
// database and schema emits, until ctx ends or the store is closed; it then
// returns nil. It holds a dedicated connection with LISTEN and reconnects
// with backoff when that connection drops; wake-ups sent while it is
// disconnected are lost, which agents survive by polling.
func (s *Store) ListenWakeups(ctx context.Context, fn func(store.Wakeup)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	var failures int64
	for {
		err := s.listen(ctx, fn, func() { failures = 0 })
		if ctx.Err() != nil {
			return nil
		}
		s.log.WarnContext(ctx, "wake-up listener disconnected, reconnecting", "error", err, "failures", failures+1)
		if reconnect.Sleep(ctx, failures) != nil {
			return nil
		}
		failures++
	}
}

// listen runs one LISTEN connection until it fails or ctx ends.
func (s *Store) listen(ctx context.Context, fn func(store.Wakeup), connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, s.connCfg.Copy())
	if err != nil {
		return fmt.Errorf("listen: connect: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "LISTEN "+wakeupChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	connected()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("listen: wait: %w", err)
		}
		var p wakeupPayload
		if err := json.Unmarshal([]byte(n.Payload), &p); err != nil {
			s.log.WarnContext(ctx, "ignoring malformed wake-up", "error", err)
			continue
		}
		if p.Schema != s.schema {
			continue
		}
		fn(store.Wakeup{Tenant: p.Tenant, EnvironmentID: p.EnvironmentID, CancelTaskID: p.CancelTaskID, DesiredState: p.DesiredState})
	}
}
