package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/outposthq/outpost/bench/internal/logfmt"
)

// The agent's log records the benchmark reads (text handler, --log-level
// info): the agent's per task, the terraform executor's per CLI command.
const (
	msgReported = "reported"
	msgPhase    = "terraform phase"
)

// throttledMark is in the line client-go logs when its client-side rate
// limiter held a request for more than a second.
const throttledMark = "client-side throttling"

// taskRecord is what the executor logged about one task's CLI commands.
type taskRecord struct {
	start, end time.Time                // first command's start, last command's end
	phases     map[string]time.Duration // elapsed by phase: init, plan, apply, output
}

// cli is the time from the start of the first command to the end of the
// last.
func (r *taskRecord) cli() time.Duration { return r.end.Sub(r.start) }

// readAgentLog reads the log from offset and returns the executor's
// records of the tasks in ids and how many of them the agent has reported.
// Lines are logfmt, as slog's text handler writes them.
func readAgentLog(path string, offset int64, ids map[string]bool) (map[string]*taskRecord, int, error) {
	f, err := os.Open(path) //nolint:gosec // the benchmark's own temp dir
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, 0, err
	}
	records := map[string]*taskRecord{}
	reported := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		kv := logfmt.Parse(sc.Text())
		id := kv["task"]
		if !ids[id] {
			continue
		}
		switch kv["msg"] {
		case msgReported:
			reported++
		case msgPhase:
			at, err := time.Parse(time.RFC3339Nano, kv["time"])
			if err != nil {
				return nil, 0, fmt.Errorf("agent log: %q: %w", sc.Text(), err)
			}
			elapsed, err := time.ParseDuration(kv["elapsed"])
			if err != nil {
				return nil, 0, fmt.Errorf("agent log: %q: %w", sc.Text(), err)
			}
			r := records[id]
			if r == nil {
				r = &taskRecord{phases: map[string]time.Duration{}}
				records[id] = r
			}
			if start := at.Add(-elapsed); r.start.IsZero() || start.Before(r.start) {
				r.start = start
			}
			if at.After(r.end) {
				r.end = at
			}
			r.phases[kv["phase"]] += elapsed
		}
	}
	return records, reported, sc.Err()
}

// countThrottled counts the lines of the log from offset in which
// client-go says its rate limiter held a request for over a second.
func countThrottled(path string, offset int64) (int, error) {
	f, err := os.Open(path) //nolint:gosec // the benchmark's own temp dir
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0, err
	}
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), throttledMark) {
			n++
		}
	}
	return n, sc.Err()
}
