package main

import (
	"bytes"
	"io"
	"os"
	"strings"
	"time"

	"github.com/outposthq/outpost/bench/internal/logfmt"
)

// The agent's log records the benchmark reads (slog's text handler,
// --log-level debug).
const (
	msgSynced            = "release synced"
	msgCorrected         = "drift corrected"
	msgDetected          = "drift detected"
	msgLeading           = "leading"
	msgReconcilerStarted = "reconciler started"
	msgDesiredLoaded     = "desired state loaded"
	// throttling is in client-go's (klog) line about a request that
	// waited for the client's rate limiter.
	throttling = "client-side throttling"
)

// record is one log line's fields and its time.
type record struct {
	at   time.Time
	kv   map[string]string
	line string
}

// logTail reads the complete lines appended to a log file since the last
// call.
type logTail struct {
	path    string
	offset  int64
	partial []byte
}

// next returns the records of the lines completed since the last call.
func (t *logTail) next() ([]record, error) {
	f, err := os.Open(t.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(t.offset, io.SeekStart); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	t.offset += int64(len(b))
	b = append(t.partial, b...)
	end := bytes.LastIndexByte(b, '\n')
	if end < 0 {
		t.partial = b
		return nil, nil
	}
	t.partial = append([]byte(nil), b[end+1:]...)
	var out []record
	for line := range strings.SplitSeq(string(b[:end]), "\n") {
		kv := logfmt.Parse(line)
		at, _ := time.Parse(time.RFC3339Nano, kv["time"])
		out = append(out, record{at: at, kv: kv, line: line})
	}
	return out, nil
}
