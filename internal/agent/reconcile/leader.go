package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/outposthq/outpost/internal/taskspec"
)

// Defaults of LeaderOptions.
const (
	DefaultLeaseName     = "outpost-agent-reconciler"
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// Log field names of the leader election.
const (
	logIdentity = "identity"
	logLease    = "lease"
)

// LeaderOptions configures RunWhenLeader.
type LeaderOptions struct {
	// Client reaches the cluster as the agent. Required.
	Client kubernetes.Interface
	// Namespace holds the Lease: the agent's own namespace. Required.
	Namespace string
	// LeaseName names the Lease; empty means DefaultLeaseName.
	LeaseName string
	// Identity names this replica (its pod name). Required.
	Identity string
	// LeaseDuration is how long a Lease not renewed keeps others waiting;
	// 0 means DefaultLeaseDuration.
	LeaseDuration time.Duration
	// RenewDeadline is how long the leader retries renewing before it
	// gives up leadership; 0 means DefaultRenewDeadline.
	RenewDeadline time.Duration
	// RetryPeriod spaces the attempts to acquire or renew; 0 means
	// DefaultRetryPeriod.
	RetryPeriod time.Duration
	// KeepLeaseOnCancel leaves the Lease held when ctx ends, as a crash
	// would, instead of releasing it for another replica at once. For
	// tests.
	KeepLeaseOnCancel bool
	// Logger receives leadership changes. Nil discards.
	Logger *slog.Logger
}

// Validate checks the options and fills defaults.
func (o *LeaderOptions) Validate() error {
	if o.Client == nil {
		return fmt.Errorf("%w: leader election: Client is required", ErrInvalidOptions)
	}
	if !taskspec.IsDNSLabel(o.Namespace) {
		return fmt.Errorf("%w: leader election: Namespace %q: want the agent's namespace", ErrInvalidOptions, o.Namespace)
	}
	if o.Identity == "" {
		return fmt.Errorf("%w: leader election: Identity is required", ErrInvalidOptions)
	}
	if o.LeaseName == "" {
		o.LeaseName = DefaultLeaseName
	}
	if o.LeaseDuration == 0 {
		o.LeaseDuration = DefaultLeaseDuration
	}
	if o.RenewDeadline == 0 {
		o.RenewDeadline = DefaultRenewDeadline
	}
	if o.RetryPeriod == 0 {
		o.RetryPeriod = DefaultRetryPeriod
	}
	if o.LeaseDuration <= o.RenewDeadline || o.RenewDeadline <= o.RetryPeriod || o.RetryPeriod <= 0 {
		return fmt.Errorf("%w: leader election: want LeaseDuration > RenewDeadline > RetryPeriod > 0", ErrInvalidOptions)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// RunWhenLeader campaigns for the Lease until ctx ends and calls run with
// a context that ends when leadership is lost; it calls run again each
// time leadership is won back. At most one call of run is in flight. If
// run fails while leading, the Lease is released and the error returned;
// if it returns nil, the replica steps down and campaigns again. It
// returns nil when ctx ends.
func RunWhenLeader(ctx context.Context, opts LeaderOptions, run func(ctx context.Context) error) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: opts.LeaseName, Namespace: opts.Namespace},
		Client:     opts.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: opts.Identity},
	}
	attrs := []slog.Attr{slog.String(logIdentity, opts.Identity), slog.String(logLease, opts.Namespace+"/"+opts.LeaseName)}
	for ctx.Err() == nil {
		leading := make(chan context.Context, 1)
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   opts.LeaseDuration,
			RenewDeadline:   opts.RenewDeadline,
			RetryPeriod:     opts.RetryPeriod,
			ReleaseOnCancel: !opts.KeepLeaseOnCancel,
			Name:            opts.LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) { leading <- lctx },
				OnStoppedLeading: func() {},
			},
		})
		if err != nil {
			return fmt.Errorf("%w: leader election: %w", ErrInvalidOptions, err)
		}
		term, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			le.Run(term)
		}()
		select {
		case lctx := <-leading:
			opts.Logger.LogAttrs(ctx, slog.LevelInfo, "leading", attrs...)
			runErr := run(lctx)
			lost := lctx.Err() != nil
			cancel()
			<-done
			opts.Logger.LogAttrs(context.WithoutCancel(ctx), slog.LevelInfo, "stopped leading", attrs...)
			if runErr != nil && !lost {
				return fmt.Errorf("reconcile: while leading: %w", runErr)
			}
		case <-done:
			cancel()
		}
	}
	return nil
}
