package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/outposthq/outpost/bench/internal/logfmt"
)

// The agent's log records the benchmark reads (text handler, --log-level
// info): the agent's per task, the helm executor's per release.
const (
	msgReported  = "reported"
	msgValidated = "helm release validated"
	msgDone      = "helm task done"
)

// taskRecord is what the executor logged about one task.
type taskRecord struct {
	validated time.Time     // its "helm release validated" record
	done      time.Time     // its "helm task done" record
	duration  time.Duration // Execute's duration, from that record
}

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
		case msgValidated, msgDone:
			at, err := time.Parse(time.RFC3339Nano, kv["time"])
			if err != nil {
				return nil, 0, fmt.Errorf("agent log: %q: %w", sc.Text(), err)
			}
			r := records[id]
			if r == nil {
				r = &taskRecord{}
				records[id] = r
			}
			if kv["msg"] == msgValidated {
				r.validated = at
				continue
			}
			r.done = at
			if r.duration, err = time.ParseDuration(kv["duration"]); err != nil {
				return nil, 0, fmt.Errorf("agent log: %q: %w", sc.Text(), err)
			}
		}
	}
	return records, reported, sc.Err()
}
