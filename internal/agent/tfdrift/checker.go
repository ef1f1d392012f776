package tfdrift

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/outposthq/outpost/internal/agent/reconcile"
	"github.com/outposthq/outpost/internal/taskspec"
)

// Log keys.
const (
	logRelease   = "release"
	logRevision  = "revision"
	logMode      = "mode"
	logError     = "error"
	logReleases  = "releases"
	logObjects   = "objects"
	logCorrected = "corrected"
)

// Checker checks terraform releases for drift while Start runs. Its
// methods are safe for concurrent use.
type Checker struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	releases map[string]*entry
	gen      uint64
	running  bool
	wake     chan struct{}
}

// entry is the schedule and reporting state of one release.
type entry struct {
	rel  Release
	spec *taskspec.Terraform
	// gen changes whenever rel does; a check of an older gen is dropped.
	gen uint64
	// next is when the release is checked next; now asks for a check at
	// once.
	next time.Time
	now  bool
	// busy: a worker has the release.
	busy bool
	// reported is the signature of the last state reported; "" before
	// the first report of a Start.
	reported string
	// pending are the reports not yet delivered, retried at retryAt.
	pending  []reconcile.Drift
	failures int64
	retryAt  time.Time
}

// New returns a Checker over opts, after opts.Validate.
func New(opts Options) (*Checker, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Checker{opts: opts, log: opts.Logger, releases: map[string]*entry{}, wake: make(chan struct{}, 1)}, nil
}

// SetDesired replaces the set of releases checked with rels, as the hub
// sends it. A release new to the set, or at a new revision, spec or mode,
// is checked one interval from now; the others keep their schedule.
// Invalid releases are logged and skipped.
func (c *Checker) SetDesired(rels []Release) {
	valid := make(map[string]Release, len(rels))
	specs := make(map[string]*taskspec.Terraform, len(rels))
	for _, rel := range rels {
		spec, err := rel.Validate()
		if err != nil {
			c.log.LogAttrs(context.Background(), slog.LevelWarn, "terraform release not checked for drift", slog.String(logRelease, rel.Name), slog.String(logError, err.Error()))
			continue
		}
		valid[rel.Name], specs[rel.Name] = rel, spec
	}
	now := c.opts.Clock.Now()
	c.mu.Lock()
	for name := range c.releases {
		if _, ok := valid[name]; !ok {
			delete(c.releases, name)
		}
	}
	for name, rel := range valid {
		e, ok := c.releases[name]
		if ok && e.rel.same(&rel) {
			e.rel.Fetcher = rel.Fetcher
			continue
		}
		if !ok {
			e = &entry{}
			c.releases[name] = e
		}
		c.gen++
		e.rel, e.spec, e.gen = rel, specs[name], c.gen
		e.next, e.now = now.Add(c.interval()), false
	}
	c.mu.Unlock()
	c.wakeUp()
}

// Forget stops checking release name at once, before a task destroys it;
// its reports not yet delivered are dropped. A check of it waiting for
// the release's locks is dropped too.
func (c *Checker) Forget(name string) {
	c.mu.Lock()
	delete(c.releases, name)
	c.mu.Unlock()
	c.wakeUp()
}

// CheckNow asks for a check of release name as soon as Start runs and a
// worker is free, whatever its schedule. It reports whether the release
// is known.
func (c *Checker) CheckNow(name string) bool {
	c.mu.Lock()
	e, ok := c.releases[name]
	if ok {
		e.now = true
	}
	c.mu.Unlock()
	c.wakeUp()
	return ok
}

// Start checks the releases until ctx ends, then waits for the checks in
// flight and returns nil. It may be called again after it returned (when
// this replica leads again): every release's state is reported afresh at
// its next check, and checks that fell due meanwhile run within a tenth of
// an interval. It fails with ErrStarted while another Start runs.
func (c *Checker) Start(ctx context.Context) error {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return ErrStarted
	}
	c.running = true
	now := c.opts.Clock.Now()
	for _, e := range c.releases {
		e.reported = ""
		if e.next.Before(now) {
			e.next = now.Add(c.opts.Jitter(c.opts.Interval))
		}
	}
	n := len(c.releases)
	c.mu.Unlock()
	c.log.LogAttrs(ctx, slog.LevelInfo, "terraform drift checker started", slog.Int(logReleases, n))

	var wg sync.WaitGroup
	sem := make(chan struct{}, c.opts.Workers)
	defer func() {
		wg.Wait()
		c.mu.Lock()
		c.running = false
		for _, e := range c.releases {
			e.busy = false
		}
		c.mu.Unlock()
		c.log.LogAttrs(context.WithoutCancel(ctx), slog.LevelInfo, "terraform drift checker stopped")
	}()
	for {
		c.mu.Lock()
		due, wait := c.dueLocked(c.opts.Clock.Now())
		for _, name := range due {
			c.releases[name].busy = true
		}
		c.mu.Unlock()
		for _, name := range due {
			wg.Go(func() {
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					return
				}
				defer func() { <-sem }()
				c.work(ctx, name)
				c.mu.Lock()
				if e, ok := c.releases[name]; ok {
					e.busy = false
				}
				c.mu.Unlock()
				c.wakeUp()
			})
		}
		timer := c.opts.Clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-c.wake:
		case <-timer.C():
		}
		timer.Stop()
	}
}

// dueLocked returns the releases, sorted, that need a worker at now (a
// check or a report retry is due) and how long until the next one will,
// assuming nothing changes meanwhile.
func (c *Checker) dueLocked(now time.Time) ([]string, time.Duration) {
	var due []string
	wait := c.opts.Interval
	for name, e := range c.releases {
		if e.busy {
			continue
		}
		if e.now || !now.Before(e.next) || (len(e.pending) > 0 && !now.Before(e.retryAt)) {
			due = append(due, name)
			continue
		}
		wait = min(wait, e.next.Sub(now))
		if len(e.pending) > 0 {
			wait = min(wait, e.retryAt.Sub(now))
		}
	}
	slices.Sort(due)
	return due, wait
}

// interval returns the delay until a check: the interval and a jitter.
func (c *Checker) interval() time.Duration {
	return c.opts.Interval + c.opts.Jitter(c.opts.Interval)
}

func (c *Checker) wakeUp() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// work runs the check of release name if one is due, then delivers its
// reports.
func (c *Checker) work(ctx context.Context, name string) {
	c.mu.Lock()
	e, ok := c.releases[name]
	if !ok {
		c.mu.Unlock()
		return
	}
	now := c.opts.Clock.Now()
	checkDue := e.now || !now.Before(e.next)
	e.now = false
	rel, spec, gen := e.rel, e.spec, e.gen
	c.mu.Unlock()
	if checkDue {
		state, corrected, done := c.check(ctx, rel, spec, gen)
		if done {
			c.mu.Lock()
			if e, ok := c.releases[name]; ok && e.gen == gen {
				e.next = c.opts.Clock.Now().Add(c.interval())
				c.publishLocked(e, state, corrected)
			}
			c.mu.Unlock()
		}
	}
	c.deliver(ctx, name)
}

// current reports whether gen is still the release's generation.
func (c *Checker) current(name string, gen uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.releases[name]
	return ok && e.gen == gen
}

// publishLocked queues the state of a release when it changed since the
// last report, and the correction just made: each drift episode is
// reported once, and so is the return to sync.
func (c *Checker) publishLocked(e *entry, state reconcile.Drift, corrected *reconcile.Drift) {
	sig := signature(state)
	send := sig != e.reported
	e.reported = sig
	if corrected != nil {
		c.pushLocked(e, *corrected)
		if state.InSync() {
			// The correction report says the release is in sync.
			return
		}
	}
	if send {
		c.pushLocked(e, state)
	}
}

// pushLocked queues d: corrections accumulate, a state replaces the state
// still waiting.
func (c *Checker) pushLocked(e *entry, d reconcile.Drift) {
	if c.opts.Reporter == nil {
		return
	}
	if !d.Corrected {
		e.pending = slices.DeleteFunc(e.pending, func(p reconcile.Drift) bool { return !p.Corrected })
	}
	e.pending = append(e.pending, d)
}

// deliver sends the reports of release name in order until one fails,
// which is retried after a backoff.
func (c *Checker) deliver(ctx context.Context, name string) {
	for {
		c.mu.Lock()
		e := c.releases[name]
		if e == nil || len(e.pending) == 0 || c.opts.Clock.Now().Before(e.retryAt) {
			c.mu.Unlock()
			return
		}
		d := e.pending[0]
		c.mu.Unlock()
		// The backoff counts from the attempt, however long it took.
		at := c.opts.Clock.Now()
		err := c.opts.Reporter.ReportDrift(ctx, d)
		c.mu.Lock()
		switch {
		case c.releases[name] != e:
			// Forgotten meanwhile: its reports went with it.
		case err != nil:
			e.retryAt = at.Add(c.opts.ReportBackoff.Delay(e.failures))
			e.failures++
		default:
			e.failures, e.retryAt = 0, time.Time{}
			e.pending = e.pending[1:]
		}
		c.mu.Unlock()
		if err != nil {
			if ctx.Err() == nil {
				c.log.LogAttrs(ctx, slog.LevelWarn, "drift report failed; retrying", slog.String(logRelease, name), slog.String(logError, err.Error()))
			}
			return
		}
	}
}
