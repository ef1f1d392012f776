package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/outposthq/outpost/bench/internal/outpostproc"
	"github.com/outposthq/outpost/bench/internal/procstat"
)

const (
	// idleSample spaces the CPU and RSS samples of the idle window.
	idleSample = 5 * time.Second
	// peakWindow is the span of the busiest stretch reported.
	peakWindow = 30 * time.Second
	// reportGrace lets drift reports in flight at the end of the window
	// reach the hub before the events are counted.
	reportGrace = 5 * time.Second
)

// idleResults is what the idle window measured.
type idleResults struct {
	window time.Duration
	// drift is the drift audit events the window added.
	drift driftCounts
	// agentCPU and hubCPU are % of one core over the window; peakCPU is
	// the agent's busiest peakWindow.
	agentCPU, hubCPU, peakCPU float64
	// rssLast and rssMax are the agent's RSS, KiB.
	rssLast, rssMax int64
	// busy is the machine's busy share over the window.
	busy float64
	// syncs, corrected and detected count the agent's log records of the
	// window: full syncs of a release, corrections, detections.
	syncs, corrected, detected int
	// syncSpan is from the first to the last release sync logged in the
	// window: how long a periodic full resync took.
	syncSpan time.Duration
	// throttled counts client-go's "client-side throttling" lines: the
	// agent's requests waited for its own rate limiter.
	throttled int
}

// runIdle changes nothing for d and measures the agent meanwhile.
func runIdle(ctx context.Context, hub *outpostproc.Hub, agent *outpostproc.Child, tail *logTail, d time.Duration) (idleResults, error) {
	res := idleResults{window: d}
	if _, err := tail.next(); err != nil { // skip what came before
		return res, fmt.Errorf("agent log: %w", err)
	}
	before, err := countDrift(ctx, hub)
	if err != nil {
		return res, err
	}
	pid := agent.PID()
	start := time.Now()
	agent0, err := procstat.CPUTime(pid)
	if err != nil {
		return res, fmt.Errorf("agent CPU time: %w", err)
	}
	hub0, _ := procstat.CPUTime(hub.PID())
	meter := procstat.StartBusy()
	type sample struct {
		at  time.Time
		cpu time.Duration
	}
	samples := []sample{{start, agent0}}
	tick := time.NewTicker(idleSample)
	defer tick.Stop()
	for time.Since(start) < d {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-tick.C:
		}
		if err := agent.Alive(); err != nil {
			return res, err
		}
		c, err := procstat.CPUTime(pid)
		if err != nil {
			return res, fmt.Errorf("agent CPU time: %w", err)
		}
		samples = append(samples, sample{time.Now(), c})
		if m, err := procstat.ReadMemory(pid); err == nil {
			res.rssLast, res.rssMax = m.RSS, max(res.rssMax, m.RSS)
		}
	}
	wall := time.Since(start)
	res.busy = meter.Share()
	end := samples[len(samples)-1]
	res.agentCPU = percent(end.cpu-agent0, end.at.Sub(start))
	if c, err := procstat.CPUTime(hub.PID()); err == nil {
		res.hubCPU = percent(c-hub0, wall)
	}
	for i, s := range samples {
		for j := i + 1; j < len(samples); j++ {
			if samples[j].at.Sub(s.at) >= peakWindow-time.Second {
				res.peakCPU = max(res.peakCPU, percent(samples[j].cpu-s.cpu, samples[j].at.Sub(s.at)))
				break
			}
		}
	}
	if res.peakCPU == 0 { // a window shorter than peakWindow
		res.peakCPU = res.agentCPU
	}
	recs, err := tail.next()
	if err != nil {
		return res, fmt.Errorf("agent log: %w", err)
	}
	var first, last time.Time
	for _, r := range recs {
		if strings.Contains(r.line, throttling) {
			res.throttled++
		}
		switch r.kv["msg"] {
		case msgSynced:
			res.syncs++
			if first.IsZero() {
				first = r.at
			}
			last = r.at
		case msgCorrected:
			res.corrected++
		case msgDetected:
			res.detected++
		}
	}
	res.syncSpan = last.Sub(first)
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(reportGrace):
	}
	after, err := countDrift(ctx, hub)
	if err != nil {
		return res, err
	}
	res.drift = after.minus(before)
	return res, nil
}

// percent is cpu over wall as % of one core.
func percent(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return 100 * float64(cpu) / float64(wall)
}
