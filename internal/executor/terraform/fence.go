package terraform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationclientv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"

	"github.com/outposthq/outpost/internal/backoff"
)

// errReleased ends a fence's held context at release.
var errReleased = errors.New("fence released")

// fencePrefix starts the name of a workspace's fence Lease.
const fencePrefix = "outpost-tf-"

// fenceReleaseTimeout bounds the deletion of the fence after a run, which
// happens even when the run's context has ended.
const fenceReleaseTimeout = 10 * time.Second

// Labels of a fence Lease.
const (
	labelManagedBy = "app.kubernetes.io/managed-by"
	labelWorkspace = "outpost.dev/terraform-workspace"
	managedBy      = "outpost"
)

// annotationHost on a fence Lease names the host of its holder, or of its
// last holder once released: the host OpenTofu writes in the state locks
// that holder's CLI takes.
const annotationHost = "outpost.dev/holder-host"

// Log keys of the fence.
const (
	logHolder = "holder"
	logHost   = "host"
	logLease  = "lease"
)

// fence is a run's exclusive claim on a workspace: a Lease
// outpost-tf-<workspace> that the run renews every duration/3 until
// release, which comes only after its CLI has exited, whether the run's
// context ended or not. A run that cannot renew within 2/3 of the duration
// cancels its own context, which interrupts the CLI and kills it
// cliWaitDelay (at most duration/6) later, so once a fence has expired
// (its renew time plus its duration is past) its holder is provably no
// longer running the CLI on the workspace, and the state lock it may have
// left can be broken. The last sixth of the duration absorbs the CLI's
// exit and clock skew between replicas.
type fence struct {
	leases   coordinationclientv1.LeaseInterface
	name     string
	holder   string
	duration time.Duration
	log      *slog.Logger
	// host is this run's host; prevHost is the host of the holder the
	// fence was taken over from, empty for a new fence.
	host     string
	prevHost string
	// acquired is when the run claimed the fence: a lock taken later is
	// not a gone run's.
	acquired time.Time

	// lease is the last version written; owned by the renewal goroutine
	// until done is closed.
	lease *coordinationv1.Lease
	stop  chan struct{}
	done  chan struct{}
	// held ends, with a cause wrapping ErrFenceLost, when the fence is
	// lost, and at release; not when the run's context ends.
	held context.Context
	lose context.CancelCauseFunc
}

// cliWaitDelay is how long a cancelled CLI has to exit after its interrupt
// before it is killed: short, so that a run stops its CLI well before its
// fence can expire. With the self-fencing deadline at 2/3 of the duration
// the CLI is gone by 5/6 of it.
func cliWaitDelay(fence time.Duration) time.Duration {
	return min(fence/6, 5*time.Second)
}

// acquireFence claims the workspace's fence for the task, or fails
// retryably with ErrFenced while another holder's fence is valid. The
// returned context ends with ctx, or with a cause wrapping ErrFenceLost
// when the fence cannot be kept; the renewals go on after ctx ends, until
// release, which ends them and releases the fence.
func (e *Executor) acquireFence(ctx context.Context, workspace, task string, log *slog.Logger) (context.Context, *fence, error) {
	f := &fence{
		leases:   e.opts.Kube.CoordinationV1().Leases(e.opts.KubeBackend.Namespace),
		name:     fencePrefix + workspace,
		holder:   e.opts.Holder + "/" + task,
		duration: e.opts.FenceDuration,
		log:      log,
		host:     e.host,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	seconds := int32(math.Ceil(f.duration.Seconds()))
	now := metav1.NowMicro()
	f.acquired = now.Time
	cur, err := f.leases.Get(ctx, f.name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		lease := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{
				Name:        f.name,
				Labels:      map[string]string{labelManagedBy: managedBy, labelWorkspace: workspace},
				Annotations: map[string]string{annotationHost: f.host},
			},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &f.holder, LeaseDurationSeconds: &seconds, AcquireTime: &now, RenewTime: &now},
		}
		f.lease, err = f.leases.Create(ctx, lease, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil, nil, &busyError{workspace: workspace, holder: "another run that claimed it at the same moment"}
		}
	case err != nil:
	default:
		if holder, expires, valid := fenceHolder(cur, f.duration); valid {
			return nil, nil, &busyError{workspace: workspace, holder: holder, expires: expires}
		}
		prev := ""
		if cur.Spec.HolderIdentity != nil {
			prev = *cur.Spec.HolderIdentity
		}
		f.prevHost = cur.Annotations[annotationHost]
		lease := cur.DeepCopy()
		if lease.Annotations == nil {
			lease.Annotations = map[string]string{}
		}
		lease.Annotations[annotationHost] = f.host
		transitions := int32(0)
		if lease.Spec.LeaseTransitions != nil {
			transitions = *lease.Spec.LeaseTransitions
		}
		transitions++
		lease.Spec = coordinationv1.LeaseSpec{HolderIdentity: &f.holder, LeaseDurationSeconds: &seconds, AcquireTime: &now, RenewTime: &now, LeaseTransitions: &transitions}
		f.lease, err = f.leases.Update(ctx, lease, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			return nil, nil, &busyError{workspace: workspace, holder: "another run that claimed it at the same moment"}
		}
		if err == nil && prev != "" {
			log.Info("terraform fence taken over after it expired", logHolder, prev, logHost, f.prevHost)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: workspace %s: claim Lease %s: %w", ErrFenced, workspace, f.name, err)
	}
	// The renewals outlive ctx: a cancelled CLI may still be writing state
	// until it exits, and release comes only after that.
	f.held, f.lose = context.WithCancelCause(context.WithoutCancel(ctx))
	runCtx, cancel := context.WithCancelCause(ctx)
	context.AfterFunc(f.held, func() { cancel(context.Cause(f.held)) })
	go f.renew(f.held, now.Time)
	return runCtx, f, nil
}

// fenceWait spaces the claims of a busy fence.
var fenceWait = backoff.Policy{Base: 200 * time.Millisecond, Max: 2 * time.Second, Jitter: true}

// minFenceWait keeps a jittered wait from spinning.
const minFenceWait = 50 * time.Millisecond

// busyError reports a fence another run holds, until expires (zero when
// unknown) or its release.
type busyError struct {
	workspace string
	holder    string
	expires   time.Time
}

func (e *busyError) Error() string {
	s := fmt.Sprintf("%s: workspace %s is held by %s", ErrFenced, e.workspace, e.holder)
	if !e.expires.IsZero() {
		s += " until " + e.expires.UTC().Format(time.RFC3339) + " (or until it releases it)"
	}
	return s
}

func (e *busyError) Unwrap() error { return ErrFenced }

// claimFence is acquireFence that waits while another run holds the
// fence, until it is released or expires: a busy workspace delays a task
// rather than failing its attempt. It fails with ErrFenced only when ctx
// ends first, or at once when the Lease cannot be read or written.
func (e *Executor) claimFence(ctx context.Context, workspace, task string, log *slog.Logger) (context.Context, *fence, error) {
	waitingFor := ""
	for n := int64(0); ; n++ {
		fctx, f, err := e.acquireFence(ctx, workspace, task, log)
		var busy *busyError
		if !errors.As(err, &busy) {
			return fctx, f, err
		}
		if busy.holder != waitingFor {
			waitingFor = busy.holder
			log.Info("terraform workspace fenced: waiting for its holder", logHolder, busy.holder)
		}
		d := max(fenceWait.Delay(n), minFenceWait)
		if !busy.expires.IsZero() {
			d = max(min(d, time.Until(busy.expires)), minFenceWait)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, fmt.Errorf("%w; gave up waiting: %w", busy, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// fenceHolder reports who holds a fence Lease and until when, and whether
// that is still in the future. A Lease without holder or times is free.
func fenceHolder(l *coordinationv1.Lease, fallback time.Duration) (string, time.Time, bool) {
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
		return "", time.Time{}, false
	}
	var last time.Time
	switch {
	case l.Spec.RenewTime != nil:
		last = l.Spec.RenewTime.Time
	case l.Spec.AcquireTime != nil:
		last = l.Spec.AcquireTime.Time
	default:
		return *l.Spec.HolderIdentity, time.Time{}, false
	}
	d := fallback
	if l.Spec.LeaseDurationSeconds != nil {
		d = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	expires := last.Add(d)
	return *l.Spec.HolderIdentity, expires, time.Now().Before(expires)
}

// renew keeps the fence until release, on f.held, which the run's context
// ending does not end. It ends the run, with a cause wrapping
// ErrFenceLost, as soon as the fence is known to be someone else's or
// gone, or when no renewal succeeded for 2/3 of the duration.
func (f *fence) renew(ctx context.Context, last time.Time) {
	cancel := f.lose
	defer close(f.done)
	interval := f.duration / 3
	retry := max(f.duration/15, 10*time.Millisecond)
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		deadline := last.Add(f.duration * 2 / 3)
		sent := time.Now()
		rctx, rcancel := context.WithDeadline(ctx, deadline)
		lost, err := f.renewOnce(rctx, sent)
		rcancel()
		switch {
		case err == nil:
			last = sent
			timer.Reset(interval)
			continue
		case lost:
			f.log.Error("terraform fence lost: stopping the run", "error", err.Error())
			cancel(fmt.Errorf("%w: %w", ErrFenceLost, err))
			return
		case !time.Now().Before(deadline):
			f.log.Error("terraform fence could not be renewed in time: stopping the run", "error", err.Error())
			cancel(fmt.Errorf("%w: no renewal of Lease %s succeeded since %s: %w", ErrFenceLost, f.name, last.UTC().Format(time.RFC3339Nano), err))
			return
		}
		f.log.Warn("terraform fence renewal failed; retrying", "error", err.Error())
		timer.Reset(min(retry, time.Until(deadline)))
	}
}

// renewOnce writes a new renew time, with the resourceVersion last seen. A
// conflict is re-read once: lost reports a fence deleted or held by
// another, which no retry can win back.
func (f *fence) renewOnce(ctx context.Context, now time.Time) (lost bool, err error) {
	for range 2 {
		lease := f.lease.DeepCopy()
		t := metav1.NewMicroTime(now)
		lease.Spec.RenewTime = &t
		updated, err := f.leases.Update(ctx, lease, metav1.UpdateOptions{})
		if err == nil {
			f.lease = updated
			return false, nil
		}
		if apierrors.IsNotFound(err) {
			return true, fmt.Errorf("lease %s was deleted", f.name)
		}
		if !apierrors.IsConflict(err) {
			return false, err
		}
		cur, gerr := f.leases.Get(ctx, f.name, metav1.GetOptions{})
		if apierrors.IsNotFound(gerr) {
			return true, fmt.Errorf("lease %s was deleted", f.name)
		}
		if gerr != nil {
			return false, gerr
		}
		if cur.UID != f.lease.UID || cur.Spec.HolderIdentity == nil || *cur.Spec.HolderIdentity != f.holder {
			holder := ""
			if cur.Spec.HolderIdentity != nil {
				holder = *cur.Spec.HolderIdentity
			}
			return true, fmt.Errorf("lease %s is now held by %q", f.name, holder)
		}
		f.lease = cur
	}
	return false, errors.New("the Lease kept changing under the renewal")
}

// ranOn reports whether host is this run's or the previous holder's.
func (f *fence) ranOn(host string) bool {
	return host != "" && (host == f.host || host == f.prevHost)
}

// release stops the renewals and releases the fence if it is still this
// run's, so the next run on the workspace need not wait for it to expire.
// The Lease stays, without holder, with the annotation naming this host,
// so that the next holder knows which host's locks it may break.
func (f *fence) release() {
	close(f.stop)
	<-f.done
	f.lose(errReleased)
	ctx, cancel := context.WithTimeout(context.Background(), fenceReleaseTimeout)
	defer cancel()
	// The update carries the resourceVersion last written, so a
	// successor's fence is never released.
	lease := f.lease.DeepCopy()
	lease.Spec.HolderIdentity = nil
	_, err := f.leases.Update(ctx, lease, metav1.UpdateOptions{})
	switch {
	case err == nil, apierrors.IsNotFound(err):
	case apierrors.IsConflict(err):
		f.log.Warn("terraform fence changed hands before its release; left to its holder", logLease, f.name)
	default:
		// It expires on its own after its duration.
		f.log.Warn("terraform fence release failed; it expires on its own", logLease, f.name, "error", err.Error())
	}
}
