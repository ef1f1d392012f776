package main

import (
	"context"
	"fmt"

	"connectrpc.com/connect"

	"github.com/outposthq/outpost/bench/internal/outpostproc"
	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
)

// The audit actions of drift reports (internal/store).
const (
	actionDriftDetected  = "release.drift_detected"
	actionDriftCorrected = "release.drift_corrected"
	actionInSync         = "release.in_sync"
)

// driftCounts are the drift audit events of the tenant so far: every
// event, not distinct releases. inSync, a release's return to sync, is
// not drift; it is counted to show the reports the hub got.
type driftCounts struct {
	detected, corrected, inSync int
}

func (c driftCounts) total() int { return c.detected + c.corrected }

func (c driftCounts) minus(o driftCounts) driftCounts {
	return driftCounts{detected: c.detected - o.detected, corrected: c.corrected - o.corrected, inSync: c.inSync - o.inSync}
}

// countDrift counts the drift audit events through ListAuditEvents.
func countDrift(ctx context.Context, hub *outpostproc.Hub) (driftCounts, error) {
	det, err := countAudit(ctx, hub, actionDriftDetected)
	if err != nil {
		return driftCounts{}, err
	}
	cor, err := countAudit(ctx, hub, actionDriftCorrected)
	if err != nil {
		return driftCounts{}, err
	}
	in, err := countAudit(ctx, hub, actionInSync)
	if err != nil {
		return driftCounts{}, err
	}
	return driftCounts{detected: det, corrected: cor, inSync: in}, nil
}

// countAudit counts the audit events of one action, a page at a time.
func countAudit(ctx context.Context, hub *outpostproc.Hub, action string) (int, error) {
	const page = 1000
	n, after := 0, int64(0)
	for {
		resp, err := hub.Operator.ListAuditEvents(ctx, connect.NewRequest(&outpostv1.ListAuditEventsRequest{AfterSeq: after, Limit: page, Action: action}))
		if err != nil {
			return 0, fmt.Errorf("list audit events %s: %w", action, err)
		}
		events := resp.Msg.GetEvents()
		for _, e := range events {
			if e.GetAction() == action {
				n++
			}
			after = max(after, e.GetSeq())
		}
		if len(events) < page {
			return n, nil
		}
	}
}
