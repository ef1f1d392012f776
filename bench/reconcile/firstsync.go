package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/outposthq/outpost/bench/internal/outpostproc"
	"github.com/outposthq/outpost/bench/internal/procstat"
)

// syncMarks are the times of the agent's log records of one start of its
// reconciler, up to the first full sync of every release.
type syncMarks struct {
	leading, reconcilerStarted, desiredLoaded, allSynced time.Time
}

// waitFirstSync reads the agent's log until every one of n releases has a
// "release synced" record, failing when the agent exits or timeout passes.
func waitFirstSync(ctx context.Context, agent *outpostproc.Child, tail *logTail, n int, timeout time.Duration) (syncMarks, error) {
	var m syncMarks
	synced := map[string]bool{}
	want := strconv.Itoa(n)
	deadline := time.Now().Add(timeout)
	for {
		recs, err := tail.next()
		if err != nil {
			return m, fmt.Errorf("agent log: %w", err)
		}
		for _, r := range recs {
			switch r.kv["msg"] {
			case msgLeading:
				if m.leading.IsZero() {
					m.leading = r.at
				}
			case msgReconcilerStarted:
				if m.reconcilerStarted.IsZero() {
					m.reconcilerStarted = r.at
				}
			case msgDesiredLoaded:
				if m.desiredLoaded.IsZero() && r.kv["releases"] == want {
					m.desiredLoaded = r.at
				}
			case msgSynced:
				if name := r.kv["release"]; !synced[name] {
					synced[name] = true
					if len(synced) == n {
						m.allSynced = r.at
						return m, nil
					}
				}
			}
		}
		if err := agent.Alive(); err != nil {
			return m, err
		}
		if time.Now().After(deadline) {
			return m, fmt.Errorf("%d of %d releases synced by the reconciler after %v: %s", len(synced), n, timeout, procstat.Tail(agent.LogPath, 10))
		}
		select {
		case <-ctx.Done():
			return m, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
