package tfdrift

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"k8s.io/utils/clock"

	"github.com/outposthq/outpost/internal/agent/reconcile"
	"github.com/outposthq/outpost/internal/backoff"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/terraform"
)

// Defaults of Options.
const (
	// DefaultInterval is the period of the checks of one release.
	DefaultInterval = time.Hour
	// DefaultWorkers is the number of checks run at once.
	DefaultWorkers = 2
	// DefaultReportRetryBase and DefaultReportRetryMax space the retries
	// of a failed report.
	DefaultReportRetryBase = time.Second
	DefaultReportRetryMax  = time.Minute
)

// Sentinel errors.
var (
	// ErrInvalidOptions reports Options that Validate refused.
	ErrInvalidOptions = errors.New("tfdrift: invalid options")
	// ErrInvalidRelease reports a release that cannot be checked.
	ErrInvalidRelease = errors.New("tfdrift: invalid release")
	// ErrStarted reports a Start while another runs.
	ErrStarted = errors.New("tfdrift: already started")
)

// Executor runs a terraform task: the terraform executor, in process.
type Executor interface {
	Execute(ctx context.Context, t executor.Task) (json.RawMessage, error)
}

var _ Executor = (*terraform.Executor)(nil)

// Redactor scrubs the secrets a check's executor registered from its
// error, as the agent's per-task redactor does.
type Redactor interface {
	executor.Redactor
	String(string) string
}

// Options configures a Checker.
type Options struct {
	// Executor runs the checks. Required.
	Executor Executor
	// Reporter receives drift reports (the agent, which forwards them to
	// the hub). Nil discards them.
	Reporter reconcile.Reporter
	// Lock, when set, is held with the release's conflict keys during a
	// check: the agent's task locks.
	Lock reconcile.Locker
	// NewRedactor returns the redactor of one check, as a task attempt
	// gets it. Required.
	NewRedactor func() Redactor
	// Interval is the period of the checks of a release; 0 means
	// DefaultInterval.
	Interval time.Duration
	// Jitter returns the random delay added to each interval; nil means
	// up to a tenth of the interval.
	Jitter func(interval time.Duration) time.Duration
	// Workers is the number of checks run at once; 0 means
	// DefaultWorkers.
	Workers int
	// ReportBackoff spaces the retries of a failed report, on Clock; the
	// zero value means DefaultReportRetryBase to DefaultReportRetryMax.
	ReportBackoff backoff.Policy
	// Clock schedules the checks and dates the reports; nil means the
	// real clock.
	Clock clock.Clock
	// Logger receives one record per check. Nil discards.
	Logger *slog.Logger
}

// Validate checks the options and fills defaults.
func (o *Options) Validate() error {
	if o.Executor == nil {
		return fmt.Errorf("%w: Executor is required", ErrInvalidOptions)
	}
	if o.NewRedactor == nil {
		return fmt.Errorf("%w: NewRedactor is required", ErrInvalidOptions)
	}
	if o.Interval < 0 || o.Workers < 0 {
		return fmt.Errorf("%w: Interval and Workers may not be negative", ErrInvalidOptions)
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.Workers == 0 {
		o.Workers = DefaultWorkers
	}
	if o.Jitter == nil {
		o.Jitter = func(d time.Duration) time.Duration {
			return rand.N(d/10 + 1) //nolint:gosec // spreading checks needs no unpredictability
		}
	}
	if o.ReportBackoff == (backoff.Policy{}) {
		o.ReportBackoff = backoff.Policy{Base: DefaultReportRetryBase, Max: DefaultReportRetryMax, Jitter: true}
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
