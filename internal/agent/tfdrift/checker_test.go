package tfdrift_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	testclock "k8s.io/utils/clock/testing"

	"github.com/outposthq/outpost/internal/agent/reconcile"
	"github.com/outposthq/outpost/internal/agent/tfdrift"
	"github.com/outposthq/outpost/internal/backoff"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/keylock"
	"github.com/outposthq/outpost/internal/redact"
	"github.com/outposthq/outpost/internal/taskspec"
)

const interval = time.Hour

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// call is one Execute of the fake executor.
type call struct {
	release string
	action  string
	taskID  string
	held    []string
}

// outcome is what the fake executor answers to one call.
type outcome struct {
	res    taskspec.TerraformResult
	err    error
	secret string
}

// fakeExecutor answers calls with its outcomes in order (the last one
// repeats) and records each call, with the locks held, on calls.
type fakeExecutor struct {
	locks *recordingLocker

	mu       sync.Mutex
	outcomes []outcome
	calls    chan call
}

func (f *fakeExecutor) Execute(_ context.Context, t executor.Task) (json.RawMessage, error) {
	var s taskspec.Terraform
	if err := taskspec.Decode(t.Spec, &s); err != nil {
		return nil, err
	}
	f.mu.Lock()
	o := f.outcomes[0]
	if len(f.outcomes) > 1 {
		f.outcomes = f.outcomes[1:]
	}
	f.mu.Unlock()
	f.calls <- call{release: s.Workspace, action: s.EffectiveAction(), taskID: t.ID, held: f.locks.heldKeys()}
	if o.secret != "" {
		t.Redact.AddSecret(o.secret)
	}
	if o.err != nil {
		return nil, o.err
	}
	return json.Marshal(o.res)
}

func (f *fakeExecutor) answer(os ...outcome) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outcomes = os
}

// recordingLocker is the agent's keyed lock, recording what is held and
// telling when a Lock starts waiting.
type recordingLocker struct {
	keylock.Locker
	mu      sync.Mutex
	held    map[string]bool
	waiting chan []string
}

func (l *recordingLocker) Lock(ctx context.Context, keys []string) (func(), error) {
	select {
	case l.waiting <- keys:
	default:
	}
	unlock, err := l.Locker.Lock(ctx, keys)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	for _, k := range keys {
		l.held[k] = true
	}
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		for _, k := range keys {
			delete(l.held, k)
		}
		l.mu.Unlock()
		unlock()
	}, nil
}

func (l *recordingLocker) heldKeys() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for k := range l.held {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// fakeReporter passes reports to the test; while failures is above 0 it
// fails them, counting down.
type fakeReporter struct {
	mu       sync.Mutex
	failures int
	attempts chan struct{}
	reports  chan reconcile.Drift
}

func (r *fakeReporter) ReportDrift(_ context.Context, d reconcile.Drift) error {
	r.mu.Lock()
	fail := r.failures > 0
	if fail {
		r.failures--
	}
	r.mu.Unlock()
	if fail {
		r.attempts <- struct{}{}
		return errors.New("hub unreachable")
	}
	r.reports <- d
	return nil
}

type harness struct {
	c     *tfdrift.Checker
	clock *testclock.FakeClock
	exec  *fakeExecutor
	rep   *fakeReporter
	locks *recordingLocker
}

func newHarness(t *testing.T, workers int) *harness {
	t.Helper()
	locks := &recordingLocker{held: map[string]bool{}, waiting: make(chan []string, 16)}
	h := &harness{
		clock: testclock.NewFakeClock(t0),
		exec:  &fakeExecutor{locks: locks, calls: make(chan call, 64), outcomes: []outcome{{}}},
		rep:   &fakeReporter{attempts: make(chan struct{}, 16), reports: make(chan reconcile.Drift, 64)},
		locks: locks,
	}
	c, err := tfdrift.New(tfdrift.Options{
		Executor: h.exec, Reporter: h.rep, Lock: locks,
		NewRedactor: func() tfdrift.Redactor { return redact.New() },
		Interval:    interval, Workers: workers, Clock: h.clock,
		Jitter:        func(time.Duration) time.Duration { return 0 },
		ReportBackoff: backoff.Policy{Base: time.Minute, Max: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	return h
}

// start runs the checker until the test ends or stop is called.
func (h *harness) start(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- h.c.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Start: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// stepToCall advances the fake clock by d and returns the check that
// runs. A step can land while the checker's loop is between timers (it
// re-arms from its own goroutine once a check ends); when no check follows
// within half a second of real time, it steps again, which any real clock
// would also have done.
func (h *harness) stepToCall(t *testing.T, d time.Duration) call {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		h.clock.Step(d)
		select {
		case c := <-h.exec.calls:
			return c
		case <-t.Context().Done():
			t.Fatal("no check ran")
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no check ran within 30 s of stepping the clock")
		}
	}
}

func (h *harness) call(t *testing.T) call {
	t.Helper()
	select {
	case c := <-h.exec.calls:
		return c
	case <-t.Context().Done():
		t.Fatal("no check ran")
	}
	return call{}
}

func (h *harness) report(t *testing.T) reconcile.Drift {
	t.Helper()
	select {
	case d := <-h.rep.reports:
		return d
	case <-t.Context().Done():
		t.Fatal("nothing reported")
	}
	return reconcile.Drift{}
}

// checkNow asks for a check of name and waits until it is executing.
func (h *harness) checkNow(t *testing.T, name string) call {
	t.Helper()
	if !h.c.CheckNow(name) {
		t.Fatalf("release %s unknown", name)
	}
	return h.call(t)
}

func release(name string, rev int64, mode reconcile.Mode) tfdrift.Release {
	spec := fmt.Sprintf(`{"workspace":%q,"url":"https://modules.example/%s.tar.gz","approval":"always"}`, name, name)
	return tfdrift.Release{Name: name, Revision: rev, Mode: mode, TaskID: "task-" + name, Spec: json.RawMessage(spec)}
}

func planned(resources ...taskspec.TerraformResourceChange) outcome {
	return outcome{res: taskspec.TerraformResult{Action: taskspec.TerraformPlan, Plan: taskspec.TerraformPlanSummary{
		Resources: resources, HasChanges: len(resources) > 0, Change: len(resources), Digest: "sha256:" + strings.Repeat("0", 64),
	}}}
}

var (
	bucket = taskspec.TerraformResourceChange{Address: "aws_s3_bucket.logs", Action: taskspec.ResourceUpdate}
	role   = taskspec.TerraformResourceChange{Address: "aws_iam_role.app", Action: taskspec.ResourceReplace}
)

func addresses(d reconcile.Drift) string {
	var out []string
	for _, o := range d.Objects {
		out = append(out, o.Address+"="+strings.Join(o.Fields, ","))
	}
	return strings.Join(out, " ")
}

func TestTheFirstCheckComesOneIntervalAfterLoad(t *testing.T) {
	h := newHarness(t, 1)
	h.exec.answer(planned(bucket))
	h.c.SetDesired([]tfdrift.Release{release("db", 3, "")})
	h.start(t)
	c := h.stepToCall(t, interval)
	if c.release != "db" || c.action != taskspec.TerraformPlan || c.taskID != "task-db" {
		t.Fatalf("check = %+v, want a plan of db as task-db (the detect mode is the default)", c)
	}
	d := h.report(t)
	if d.Release != "db" || d.Revision != 3 || d.Mode != reconcile.ModeDetect || d.Corrected || d.Error != "" || addresses(d) != "aws_s3_bucket.logs=update" || !d.Time.Equal(t0.Add(interval)) {
		t.Fatalf("report = %+v, want drift of aws_s3_bucket.logs at revision 3", d)
	}
	t.Run("and the next one interval later", func(t *testing.T) {
		if c := h.stepToCall(t, interval); c.release != "db" {
			t.Fatalf("check = %+v", c)
		}
	})
}

func TestEachDriftEpisodeIsReportedOnce(t *testing.T) {
	h := newHarness(t, 1)
	h.exec.answer(planned(bucket), planned(bucket), planned(), planned(), planned(bucket, role))
	h.c.SetDesired([]tfdrift.Release{release("db", 1, reconcile.ModeDetect)})
	h.start(t)

	h.checkNow(t, "db")
	if d := h.report(t); addresses(d) != "aws_s3_bucket.logs=update" {
		t.Fatalf("first report = %+v, want the drift", d)
	}
	h.checkNow(t, "db") // the same drift: not reported again
	h.checkNow(t, "db")
	if d := h.report(t); !d.InSync() || len(d.Objects) != 0 {
		t.Fatalf("second report = %+v, want the return to sync (the repeated drift was reported twice)", d)
	}
	h.checkNow(t, "db") // still in sync: not reported again
	h.checkNow(t, "db")
	if d := h.report(t); addresses(d) != "aws_iam_role.app=replace aws_s3_bucket.logs=update" {
		t.Fatalf("third report = %+v, want the new drift, sorted by address (the repeated sync was reported twice)", d)
	}
}

func TestTheCorrectModeApplies(t *testing.T) {
	h := newHarness(t, 1)
	applied := planned(bucket)
	applied.res.Action, applied.res.Changed = taskspec.TerraformApply, true
	held := planned(role)
	held.res.Action, held.res.AwaitingApproval = taskspec.TerraformApply, true
	h.exec.answer(applied, held)
	h.c.SetDesired([]tfdrift.Release{release("db", 2, reconcile.ModeCorrect)})
	h.start(t)

	if c := h.checkNow(t, "db"); c.action != taskspec.TerraformApply {
		t.Fatalf("check = %+v, want an apply in the correct mode", c)
	}
	if d := h.report(t); !d.Corrected || d.Error != "" || addresses(d) != "aws_s3_bucket.logs=update" || d.Mode != reconcile.ModeCorrect {
		t.Fatalf("report = %+v, want aws_s3_bucket.logs corrected", d)
	}
	h.checkNow(t, "db")
	d := h.report(t)
	if d.Corrected || addresses(d) != "aws_iam_role.app=replace" || !strings.Contains(d.Error, "needs approval") || !strings.Contains(d.Error, "sha256:") || !strings.Contains(d.Error, "outpost release apply") {
		t.Fatalf("report = %+v, want aws_iam_role.app drifted, not corrected, with an error saying the correction needs approval of its plan", d)
	}
}

func TestFailedChecksAreReportedRedactedAndRetriedNextInterval(t *testing.T) {
	h := newHarness(t, 1)
	const secret = "hunter2-Zq9-s3cret"
	fail := outcome{err: fmt.Errorf("tofu: plan: backend rejected password %s", secret), secret: secret}
	h.exec.answer(fail, fail, planned())
	h.c.SetDesired([]tfdrift.Release{release("db", 1, "")})
	h.start(t)

	h.stepToCall(t, interval)
	d := h.report(t)
	if d.InSync() || !strings.Contains(d.Error, "backend rejected password") || strings.Contains(d.Error, secret) || !strings.Contains(d.Error, redact.Marker) {
		t.Fatalf("report = %+v, want the error with the secret redacted", d)
	}
	h.stepToCall(t, interval) // retried an interval later; the same error is not reported again
	h.checkNow(t, "db")
	if d := h.report(t); !d.InSync() {
		t.Fatalf("report = %+v, want in sync (the repeated error was reported twice)", d)
	}
}

func TestChecksHoldTheReleaseLocks(t *testing.T) {
	t.Run("a check runs holding release/<name> and tf/<workspace>", func(t *testing.T) {
		h := newHarness(t, 1)
		h.c.SetDesired([]tfdrift.Release{release("db", 1, "")})
		h.start(t)
		if c := h.checkNow(t, "db"); !slices.Equal(c.held, []string{"release/db", "tf/db"}) {
			t.Fatalf("locks held during the check = %v", c.held)
		}
	})
	t.Run("a check waiting for a task of its release is dropped when the task forgets it", func(t *testing.T) {
		h := newHarness(t, 1)
		h.c.SetDesired([]tfdrift.Release{release("db", 1, ""), release("cache", 1, "")})
		// A destroy task of db holds its locks.
		unlock, err := h.locks.Lock(t.Context(), []string{reconcile.LockKey("db"), "tf/db"})
		if err != nil {
			t.Fatal(err)
		}
		<-h.locks.waiting
		h.start(t)
		h.c.CheckNow("db")
		if keys := <-h.locks.waiting; !slices.Contains(keys, "release/db") {
			t.Fatalf("the check waits for %v", keys)
		}
		h.c.Forget("db") // as forgetRemoved does, under the task's locks
		unlock()
		// One worker: cache's check runs only after db's was dropped.
		if c := h.checkNow(t, "cache"); c.release != "cache" {
			t.Fatalf("check = %+v, want cache's, not the forgotten db's", c)
		}
	})
}

func TestChecksRunOnlyWhileStarted(t *testing.T) {
	h := newHarness(t, 1)
	h.c.SetDesired([]tfdrift.Release{release("db", 1, "")})
	h.c.CheckNow("db")
	h.clock.Step(2 * interval)
	if len(h.exec.calls) != 0 {
		t.Fatal("a check ran before Start (this replica does not lead)")
	}
	stop := h.start(t)
	h.call(t)
	if d := h.report(t); !d.InSync() {
		t.Fatalf("report = %+v, want in sync", d)
	}
	t.Run("a second Start while one runs is refused", func(t *testing.T) {
		if err := h.c.Start(t.Context()); !errors.Is(err, tfdrift.ErrStarted) {
			t.Fatalf("Start = %v, want ErrStarted", err)
		}
	})
	stop()
	t.Run("leading again reports the state afresh", func(t *testing.T) {
		h.start(t)
		h.checkNow(t, "db")
		if d := h.report(t); !d.InSync() || d.Release != "db" {
			t.Fatalf("report = %+v, want db in sync again", d)
		}
	})
}

func TestFailedReportsAreRetriedWithBackoff(t *testing.T) {
	h := newHarness(t, 1)
	h.rep.failures = 1
	h.exec.answer(planned(bucket))
	h.c.SetDesired([]tfdrift.Release{release("db", 1, "")})
	h.start(t)
	h.checkNow(t, "db")
	<-h.rep.attempts
	h.clock.Step(time.Minute)
	if d := h.report(t); addresses(d) != "aws_s3_bucket.logs=update" {
		t.Fatalf("report = %+v, want the drift delivered on the retry", d)
	}
}

func TestOptionsValidate(t *testing.T) {
	red := func() tfdrift.Redactor { return redact.New() }
	tests := []struct {
		name    string
		opts    tfdrift.Options
		wantErr string
	}{
		{"an executor is required", tfdrift.Options{NewRedactor: red}, "Executor is required"},
		{"a redactor is required", tfdrift.Options{Executor: &fakeExecutor{}}, "NewRedactor is required"},
		{"a negative interval is refused", tfdrift.Options{Executor: &fakeExecutor{}, NewRedactor: red, Interval: -time.Second}, "may not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if !errors.Is(err, tfdrift.ErrInvalidOptions) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want %q", err, tt.wantErr)
			}
		})
	}
	t.Run("defaults are filled", func(t *testing.T) {
		o := tfdrift.Options{Executor: &fakeExecutor{}, NewRedactor: red}
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
		if o.Interval != tfdrift.DefaultInterval || o.Workers != tfdrift.DefaultWorkers || o.Clock == nil || o.Logger == nil {
			t.Fatalf("options = %+v", o)
		}
		if j := o.Jitter(time.Hour); j < 0 || j > 6*time.Minute {
			t.Fatalf("jitter %v outside a tenth of the interval", j)
		}
	})
}

func TestInvalidReleasesAreSkipped(t *testing.T) {
	h := newHarness(t, 1)
	destroy := release("gone", 1, "")
	destroy.Spec = json.RawMessage(`{"action":"destroy","workspace":"gone","url":"https://modules.example/gone.tar.gz"}`)
	bad := release("bad", 1, "")
	bad.Spec = json.RawMessage(`{"workspace":"Not_A_Label"}`)
	h.c.SetDesired([]tfdrift.Release{destroy, bad, release("db", 1, "")})
	for _, name := range []string{"gone", "bad"} {
		if h.c.CheckNow(name) {
			t.Errorf("release %s is checked", name)
		}
	}
	if !h.c.CheckNow("db") {
		t.Error("the valid release db is not checked")
	}
}
