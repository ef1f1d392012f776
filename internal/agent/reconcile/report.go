package reconcile

import (
	"context"
	"log/slog"
	"slices"
	"sync"

	"github.com/outposthq/outpost/internal/backoff"
)

// reportQueue hands reports to the Reporter from one goroutine. Per
// release it keeps the corrections not yet reported (merged) and the
// latest state; a failed report is retried with backoff, and a newer state
// replaces one still waiting.
type reportQueue struct {
	rep    Reporter
	policy backoff.Policy
	log    *slog.Logger

	mu      sync.Mutex
	pending map[string]*pendingReports
	order   []string
	wake    chan struct{}
}

type pendingReports struct {
	corrected *Drift
	state     *Drift
}

func newReportQueue(rep Reporter, policy backoff.Policy, log *slog.Logger) *reportQueue {
	return &reportQueue{rep: rep, policy: policy, log: log, pending: map[string]*pendingReports{}, wake: make(chan struct{}, 1)}
}

// push queues d.
func (q *reportQueue) push(d Drift) {
	if q.rep == nil {
		return
	}
	q.mu.Lock()
	p, ok := q.pending[d.Release]
	if !ok {
		p = &pendingReports{}
		q.pending[d.Release] = p
		q.order = append(q.order, d.Release)
	}
	q.merge(p, d)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// merge folds d into p: corrections accumulate, states replace.
func (q *reportQueue) merge(p *pendingReports, d Drift) {
	if !d.Corrected {
		p.state = &d
		return
	}
	if p.corrected == nil {
		p.corrected = &d
		return
	}
	c := *p.corrected
	c.Objects = append(slices.Clone(c.Objects), d.Objects...)
	c.Revision, c.Mode, c.Time = d.Revision, d.Mode, d.Time
	sortDrifts(c.Objects)
	p.corrected = &c
}

// drop forgets the reports of a release.
func (q *reportQueue) drop(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.pending, name)
	q.order = slices.DeleteFunc(q.order, func(n string) bool { return n == name })
}

// next takes the reports of the release that waited longest.
func (q *reportQueue) next() (string, *pendingReports) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.order) == 0 {
		return "", nil
	}
	name := q.order[0]
	q.order = q.order[1:]
	p := q.pending[name]
	delete(q.pending, name)
	return name, p
}

// requeue puts back the reports of name that were not delivered, unless
// newer ones replaced them meanwhile.
func (q *reportQueue) requeue(name string, p *pendingReports) {
	q.mu.Lock()
	defer q.mu.Unlock()
	cur, ok := q.pending[name]
	if !ok {
		q.pending[name] = p
		q.order = append([]string{name}, q.order...)
		return
	}
	if p.corrected != nil {
		newer := cur.corrected
		cur.corrected = nil
		q.merge(cur, *p.corrected)
		if newer != nil {
			q.merge(cur, *newer)
		}
	}
	if cur.state == nil {
		cur.state = p.state
	}
}

// run delivers reports until ctx ends.
func (q *reportQueue) run(ctx context.Context) {
	var failures int64
	for {
		name, p := q.next()
		if p == nil {
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
				continue
			}
		}
		err := q.deliver(ctx, p)
		if err == nil {
			failures = 0
			continue
		}
		q.requeue(name, p)
		q.log.LogAttrs(ctx, slog.LevelWarn, "drift report failed; retrying", slog.String(logRelease, name), slog.String(logError, err.Error()))
		if q.policy.Sleep(ctx, failures) != nil {
			return
		}
		failures++
	}
}

// deliver sends the corrections, then the state; what was delivered is
// cleared from p.
func (q *reportQueue) deliver(ctx context.Context, p *pendingReports) error {
	if p.corrected != nil {
		if err := q.rep.ReportDrift(ctx, *p.corrected); err != nil {
			return err
		}
		p.corrected = nil
	}
	if p.state != nil {
		if err := q.rep.ReportDrift(ctx, *p.state); err != nil {
			return err
		}
		p.state = nil
	}
	return nil
}
