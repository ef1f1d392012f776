package agentcmd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"

	"github.com/outposthq/outpost/internal/agent"
	"github.com/outposthq/outpost/internal/agent/reconcile"
	"github.com/outposthq/outpost/internal/agent/tfdrift"
	"github.com/outposthq/outpost/internal/kube"
)

// reconcileFlags configure the reconciler, which keeps the environment at
// the desired state of its releases while this replica leads.
type reconcileFlags struct {
	disabled  bool
	resync    time.Duration
	lease     time.Duration
	replicaID string
}

func (r *reconcileFlags) bind(fl *pflag.FlagSet) {
	fl.BoolVar(&r.disabled, "no-reconcile", false, "run tasks only: do not watch releases for drift (another agent of the environment reconciles)")
	fl.DurationVar(&r.resync, "resync", reconcile.DefaultResync, "period of the full drift resync that catches what watch events missed")
	fl.DurationVar(&r.lease, "leader-lease-duration", reconcile.DefaultLeaseDuration, "how long a reconciling replica that stopped renewing its Lease keeps the others waiting; after it the next replica takes over")
	fl.StringVar(&r.replicaID, "replica-id", env("POD_NAME", ""), "this replica's name in the leader Lease (env POD_NAME; default: host name and process id)")
}

// reconciling is the reconciler of an agent with a cluster and the loop
// that runs it while this replica leads.
type reconciling struct {
	rec    *reconcile.Reconciler
	leader reconcile.LeaderOptions
	// drift checks the terraform releases under the same leadership; nil
	// when the agent runs no terraform or the interval is 0.
	drift *tfdrift.Checker
	// sink forwards reports and refresh requests to the agent, which is
	// built after the reconciler.
	sink *agentSink
}

// agentSink lets the reconciler reach the agent once it exists.
type agentSink struct{ a *agent.Agent }

func (s *agentSink) ReportDrift(ctx context.Context, d reconcile.Drift) error {
	return s.a.ReportDrift(ctx, d)
}

// Lock holds the agent's task locks, so a correction never races a task
// of the same release.
func (s *agentSink) Lock(ctx context.Context, keys []string) (func(), error) {
	return s.a.Locker().Lock(ctx, keys)
}

// id returns this replica's name: --replica-id, else the host name and
// process id. The leader Lease and the terraform fence Leases name the
// replica by it.
func (r *reconcileFlags) id() (string, error) {
	if r.replicaID != "" {
		return r.replicaID, nil
	}
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("--replica-id: no host name: %w", err)
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid()), nil
}

func (r *reconcileFlags) setup(cluster *kube.Cluster, client kubernetes.Interface, log *slog.Logger) (*reconciling, error) {
	if r.disabled {
		return nil, nil
	}
	id, err := r.id()
	if err != nil {
		return nil, err
	}
	lease := reconcile.LeaderOptions{
		Client: client, Namespace: cluster.Namespace, Identity: id,
		LeaseDuration: r.lease, RenewDeadline: r.lease * 2 / 3, RetryPeriod: max(r.lease/8, 100*time.Millisecond),
		Logger: log,
	}
	if err := lease.Validate(); err != nil {
		return nil, fmt.Errorf("--leader-lease-duration: %w", err)
	}
	sink := &agentSink{}
	rec, err := reconcile.New(reconcile.Options{
		Config: cluster.Config, AgentNamespace: cluster.Namespace, Reporter: sink, Lock: sink,
		NeedRefresh: func(string) {
			if sink.a != nil {
				sink.a.RefreshDesired()
			}
		},
		Logger: log, Resync: r.resync, Identity: id,
	})
	if err != nil {
		return nil, err
	}
	return &reconciling{rec: rec, leader: lease, sink: sink}, nil
}

// attach gives the reconciler the agent it reports to.
func (r *reconciling) attach(a *agent.Agent) { r.sink.a = a }

// run reconciles, and checks the terraform releases, while this replica
// holds the leader Lease, until ctx ends.
func (r *reconciling) run(ctx context.Context) error {
	return reconcile.RunWhenLeader(ctx, r.leader, func(ctx context.Context) error {
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return r.rec.Start(gctx) })
		if r.drift != nil {
			g.Go(func() error { return r.drift.Start(gctx) })
		}
		return g.Wait()
	})
}

// checkTerraform adds the drift checker of terraform releases, run by exec
// every interval and reporting like the reconciler.
func (r *reconciling) checkTerraform(exec tfdrift.Executor, interval time.Duration, newRedactor func() tfdrift.Redactor, log *slog.Logger) error {
	d, err := tfdrift.New(tfdrift.Options{
		Executor: exec, Reporter: r.sink, Lock: r.sink, NewRedactor: newRedactor,
		Interval: interval, Logger: log,
	})
	if err != nil {
		return err
	}
	r.drift = d
	return nil
}
