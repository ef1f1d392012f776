package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/client-go/rest"

	"github.com/outposthq/outpost/internal/backoff"
	"github.com/outposthq/outpost/internal/taskspec"
)

// Defaults of Options.
const (
	// DefaultResync is the period of the full resync.
	DefaultResync = 10 * time.Minute
	// DefaultParallelism bounds the dry runs and applies in flight during
	// a full sync.
	DefaultParallelism = 16
	// DefaultWorkers is the number of releases and objects handled at
	// once.
	DefaultWorkers = 4
	// DefaultQPS and DefaultBurst rate-limit the client when the caller's
	// config leaves QPS at 0 (client-go would use 5).
	DefaultQPS   = 100
	DefaultBurst = 200
	// syncShare is the share of the client's rate full syncs may use;
	// the rest stays free for corrections.
	syncShare = 0.75
	// DefaultSyncTimeout bounds the wait for a new informer's first list;
	// past it the objects are read directly.
	DefaultSyncTimeout = 30 * time.Second
	// defaultRequestTimeout bounds one API request when the config sets
	// no timeout.
	defaultRequestTimeout = time.Minute
)

// Default spacing of report retries (Options.ReportBackoff).
const (
	DefaultReportRetryBase = time.Second
	DefaultReportRetryMax  = time.Minute
)

// Locker serializes work on a release with the agent's tasks: a release
// task holds the key "release/<name>" while it runs, and so does the
// reconciler while it corrects the release. *keylock.Locker implements it.
type Locker interface {
	Lock(ctx context.Context, keys []string) (unlock func(), err error)
}

// LockKey returns the key of release name in the agent's keyed lock.
func LockKey(name string) string { return "release/" + name }

// Options configures a Reconciler.
type Options struct {
	// Config reaches the cluster as the agent's identity. Required. It is
	// copied; QPS and Burst are set to DefaultQPS and DefaultBurst when
	// QPS is 0, and Timeout when 0.
	Config *rest.Config
	// AgentNamespace is the agent's own namespace, which holds the
	// manifests executor's release inventories: before it corrects a
	// manifests release the reconciler checks there that no newer
	// revision was applied. Required.
	AgentNamespace string
	// Reporter receives drift reports. Nil discards them.
	Reporter Reporter
	// NeedRefresh is called, with the release's name, when a live object
	// carries a higher outpost.dev/revision than the desired state: the
	// caller should fetch the desired state from the hub and call Update.
	// It is called when the stale state is found and again at each
	// resync until Update or SetDesired gives a newer one, from a
	// reconciler goroutine, and must not block. Nil means none.
	NeedRefresh func(release string)
	// Lock, when set, is held with LockKey(release) while a release is
	// corrected.
	Lock Locker
	// Logger receives the reconciler's records. Nil discards.
	Logger *slog.Logger
	// Resync is the period of the full resync; 0 means DefaultResync.
	Resync time.Duration
	// Parallelism bounds the dry runs and applies in flight during a full
	// sync; 0 means DefaultParallelism.
	Parallelism int
	// Workers is the number of releases and objects handled at once; 0
	// means DefaultWorkers.
	Workers int
	// SyncTimeout bounds the wait for a new informer's first list; 0
	// means DefaultSyncTimeout.
	SyncTimeout time.Duration
	// ReportBackoff spaces the retries of a failed report; the zero value
	// means DefaultReportRetryBase to DefaultReportRetryMax with jitter.
	ReportBackoff backoff.Policy
	// Identity names this agent replica in the Events it records; empty
	// means "outpost-agent".
	Identity string
	// Now is the clock of reports and Events; nil means time.Now.
	Now func() time.Time
}

// Validate checks the options and fills defaults.
func (o *Options) Validate() error {
	if o.Config == nil {
		return fmt.Errorf("%w: Config is required", ErrInvalidOptions)
	}
	if !taskspec.IsDNSLabel(o.AgentNamespace) {
		return fmt.Errorf("%w: AgentNamespace %q: want the agent's namespace (a DNS-1123 label)", ErrInvalidOptions, o.AgentNamespace)
	}
	if o.Resync < 0 || o.Parallelism < 0 || o.Workers < 0 || o.SyncTimeout < 0 {
		return fmt.Errorf("%w: Resync, Parallelism, Workers and SyncTimeout may not be negative", ErrInvalidOptions)
	}
	if o.Resync == 0 {
		o.Resync = DefaultResync
	}
	if o.Parallelism == 0 {
		o.Parallelism = DefaultParallelism
	}
	if o.Workers == 0 {
		o.Workers = DefaultWorkers
	}
	if o.SyncTimeout == 0 {
		o.SyncTimeout = DefaultSyncTimeout
	}
	if o.ReportBackoff == (backoff.Policy{}) {
		o.ReportBackoff = backoff.Policy{Base: DefaultReportRetryBase, Max: DefaultReportRetryMax, Jitter: true}
	}
	if o.Identity == "" {
		o.Identity = "outpost-agent"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}
