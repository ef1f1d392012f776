package reconcile_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/outposthq/outpost/internal/agent/reconcile"
	"github.com/outposthq/outpost/internal/kube/kubetest"
)

// campaign is one replica's RunWhenLeader.
type campaign struct {
	cancel  context.CancelFunc
	done    chan error
	running atomic.Bool
	runs    atomic.Int64
}

func TestOnlyTheLeaderRunsAndAnotherTakesOverAfterACrash(t *testing.T) {
	ns := env.Namespace(t, "agent")
	client, err := kubernetes.NewForConfig(env.AgentConfig(t, kubetest.Agent{Name: "leader-agent", Namespace: ns}))
	if err != nil {
		t.Fatal(err)
	}
	var concurrent, maxConcurrent atomic.Int64
	var mu sync.Mutex
	start := func(id string) *campaign {
		c := &campaign{done: make(chan error, 1)}
		ctx, cancel := context.WithCancel(t.Context())
		c.cancel = cancel
		opts := reconcile.LeaderOptions{
			Client: client, Namespace: ns, Identity: id,
			LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 300 * time.Millisecond,
			KeepLeaseOnCancel: true,
		}
		go func() {
			c.done <- reconcile.RunWhenLeader(ctx, opts, func(ctx context.Context) error {
				n := concurrent.Add(1)
				mu.Lock()
				maxConcurrent.Store(max(maxConcurrent.Load(), n))
				mu.Unlock()
				c.running.Store(true)
				c.runs.Add(1)
				<-ctx.Done()
				c.running.Store(false)
				concurrent.Add(-1)
				return nil
			})
		}()
		t.Cleanup(func() {
			cancel()
			select {
			case err := <-c.done:
				if err != nil {
					t.Errorf("RunWhenLeader %s: %v", id, err)
				}
			case <-time.After(deadline):
				t.Errorf("RunWhenLeader %s did not return", id)
			}
		})
		return c
	}
	a, b := start("replica-a"), start("replica-b")
	waitFor(t, "a leader", func() bool { return a.running.Load() || b.running.Load() })
	leader, follower := a, b
	if b.running.Load() {
		leader, follower = b, a
	}
	// Several renewals later, still one.
	renewals := map[string]bool{}
	waitFor(t, "three renewals of the Lease", func() bool {
		l, err := client.CoordinationV1().Leases(ns).Get(t.Context(), reconcile.DefaultLeaseName, metav1.GetOptions{})
		if err == nil && l.Spec.RenewTime != nil {
			renewals[l.Spec.RenewTime.String()+l.Spec.RenewTime.Format(".000000")] = true
		}
		return len(renewals) >= 3
	})
	if follower.running.Load() || follower.runs.Load() > 0 {
		t.Fatal("both replicas ran")
	}

	crashed := time.Now()
	leader.cancel() // the Lease is kept, as after a kill
	waitFor(t, "the other replica to take over", func() bool { return follower.running.Load() })
	// The lease duration plus retries and scheduling on a busy machine.
	if took := time.Since(crashed); took > 6*time.Second {
		t.Errorf("takeover took %s, want about the lease duration (2s)", took)
	}
	if m := maxConcurrent.Load(); m != 1 {
		t.Errorf("%d replicas ran at once", m)
	}
}

func TestLeaderOptionsAreValidated(t *testing.T) {
	tests := []struct {
		name string
		opts reconcile.LeaderOptions
	}{
		{name: "no client is refused", opts: reconcile.LeaderOptions{Namespace: "agent", Identity: "a"}},
		{name: "no identity is refused", opts: reconcile.LeaderOptions{Client: env.Client, Namespace: "agent"}},
		{name: "a renew deadline longer than the lease is refused", opts: reconcile.LeaderOptions{Client: env.Client, Namespace: "agent", Identity: "a", LeaseDuration: time.Second, RenewDeadline: 2 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := reconcile.RunWhenLeader(t.Context(), tt.opts, func(context.Context) error { return nil })
			if err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestAReconcilerLeadsAgainAfterLosingLeadership(t *testing.T) {
	s := newSetup(t)
	rel := s.webRelease(t, "web", "")
	rep := &fakeReporter{}
	r, err := reconcile.New(reconcile.Options{Config: s.cfg, AgentNamespace: s.agentNS, Reporter: rep})
	if err != nil {
		t.Fatal(err)
	}
	r.SetDesired([]reconcile.Release{rel})
	client, err := kubernetes.NewForConfig(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	lead := func() context.CancelFunc {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- reconcile.RunWhenLeader(ctx, reconcile.LeaderOptions{Client: client, Namespace: s.agentNS, Identity: "replica-a",
				LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 300 * time.Millisecond}, r.Start)
		}()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("RunWhenLeader: %v", err)
			}
		}
	}
	stop := lead()
	rep.wait(t, "the in-sync report of the first term", inSync("web"))
	stop()

	stop = lead()
	defer stop()
	waitFor(t, "the in-sync report of the second term", func() bool {
		n := 0
		for _, d := range rep.all() {
			if inSync("web")(d) {
				n++
			}
		}
		return n >= 2
	})
	s.edit(t, "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "nginx:evil" })
	waitFor(t, "the image to be restored in the second term", func() bool { return s.image(t, "web") == "nginx:1.27" })
}
