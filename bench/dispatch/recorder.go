package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// epoch anchors every timestamp the benchmark takes; durations since it
// use the monotonic clock.
var epoch = time.Now()

func now() int64 { return int64(time.Since(epoch)) }

// phase holds the timestamps of one phase's tasks, indexed by the number
// in the task id ("<prefix>-<number>"). Slots are written once each from
// many goroutines, so they are atomics.
type phase struct {
	name   string
	prefix byte
	n      int

	scheduled []int64        // steady phase: when the call was due
	enqStart  []atomic.Int64 // EnqueueTask call started
	enqDone   []atomic.Int64 // EnqueueTask call returned OK
	execStart []atomic.Int64 // the agent started the executor (first attempt seen)
	reported  []atomic.Int64 // the hub recorded the result

	completed atomic.Int64
	dupExec   atomic.Int64 // executor starts beyond the first (redeliveries)
	enqErrors atomic.Int64
}

func newPhase(name string, prefix byte, n int) *phase {
	return &phase{
		name: name, prefix: prefix, n: n,
		scheduled: make([]int64, n),
		enqStart:  make([]atomic.Int64, n),
		enqDone:   make([]atomic.Int64, n),
		execStart: make([]atomic.Int64, n),
		reported:  make([]atomic.Int64, n),
	}
}

func (p *phase) taskID(i int) string { return fmt.Sprintf("%c-%07d", p.prefix, i) }

// recorder routes agent-side observations to the phase a task id names,
// and counts the agents' calls by method.
type recorder struct {
	phases [256]atomic.Pointer[phase]
	calls  sync.Map // method → *atomic.Int64
}

func (r *recorder) countCall(path string) {
	method := path[strings.LastIndexByte(path, '/')+1:]
	c, ok := r.calls.Load(method)
	if !ok {
		c, _ = r.calls.LoadOrStore(method, new(atomic.Int64))
	}
	c.(*atomic.Int64).Add(1)
}

// callCounts returns the calls counted so far by method.
func (r *recorder) callCounts() map[string]int64 {
	out := map[string]int64{}
	r.calls.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// callsPerTask describes the calls made between two counts, per task.
func callsPerTask(before, after map[string]int64, tasks int) string {
	if tasks == 0 {
		return ""
	}
	var parts []string
	for _, m := range []string{"Claim", "ReportResult", "RenewLease", "Heartbeat", "RefreshToken", "Watch", "Poll"} {
		if d := after[m] - before[m]; d > 0 {
			parts = append(parts, fmt.Sprintf("%s %.2f", m, float64(d)/float64(tasks)))
		}
	}
	return "agent calls per task: " + strings.Join(parts, ", ")
}

func (r *recorder) register(p *phase) { r.phases[p.prefix].Store(p) }

func (r *recorder) lookup(taskID string) (*phase, int, bool) {
	if len(taskID) < 3 || taskID[1] != '-' {
		return nil, 0, false
	}
	p := r.phases[taskID[0]].Load()
	if p == nil {
		return nil, 0, false
	}
	i, err := strconv.Atoi(taskID[2:])
	if err != nil || i < 0 || i >= p.n {
		return nil, 0, false
	}
	return p, i, true
}

// executorStarted is the agents' OnExecutorStart hook.
func (r *recorder) executorStarted(taskID string, _ int64) {
	t := now()
	if p, i, ok := r.lookup(taskID); ok {
		if !p.execStart[i].CompareAndSwap(0, t) {
			p.dupExec.Add(1)
		}
	}
}

// resultRecorded is called when the hub accepted a task's report.
func (r *recorder) resultRecorded(taskID string) {
	t := now()
	if p, i, ok := r.lookup(taskID); ok {
		if p.reported[i].CompareAndSwap(0, t) {
			p.completed.Add(1)
		}
	}
}

// phaseStats is what one phase measured.
type phaseStats struct {
	enqueued, executed, completed int
	enqErrors, dupExec            int
	wall                          time.Duration // first enqueue start → last recorded result
	tps                           float64
	lat                           percentiles // enqueue call start → executor start
	enqCall                       percentiles // EnqueueTask call duration
	lag                           percentiles // steady phase: call start − schedule
	cpu                           cpuUsage
	calls                         string
	saturated                     bool // a steady phase stopped early
}

type percentiles struct {
	n                  int
	p50, p90, p99, max time.Duration
}

func percentilesOf(d []time.Duration) percentiles {
	if len(d) == 0 {
		return percentiles{}
	}
	slices.Sort(d)
	at := func(q float64) time.Duration {
		// Nearest rank.
		k := int(q*float64(len(d))+0.999999) - 1
		return d[min(max(k, 0), len(d)-1)]
	}
	return percentiles{n: len(d), p50: at(.50), p90: at(.90), p99: at(.99), max: d[len(d)-1]}
}

func (p *phase) stats(steady bool) phaseStats {
	var s phaseStats
	var lat, call, lag []time.Duration
	first, last := int64(-1), int64(0)
	for i := range p.n {
		start := p.enqStart[i].Load()
		done := p.enqDone[i].Load()
		if done == 0 {
			continue
		}
		s.enqueued++
		if first < 0 || start < first {
			first = start
		}
		call = append(call, time.Duration(done-start))
		if steady {
			lag = append(lag, time.Duration(start-p.scheduled[i]))
		}
		if e := p.execStart[i].Load(); e != 0 {
			s.executed++
			lat = append(lat, time.Duration(e-start))
		}
		if r := p.reported[i].Load(); r != 0 {
			s.completed++
			last = max(last, r)
		}
	}
	s.enqErrors = int(p.enqErrors.Load())
	s.dupExec = int(p.dupExec.Load())
	if s.completed > 0 && first >= 0 {
		s.wall = time.Duration(last - first)
		s.tps = float64(s.completed) / s.wall.Seconds()
	}
	s.lat, s.enqCall, s.lag = percentilesOf(lat), percentilesOf(call), percentilesOf(lag)
	return s
}
