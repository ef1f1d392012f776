package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/types/known/durationpb"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
	"github.com/outposthq/outpost/internal/keylock"
)

// Agent is one outpost-agent process. Start runs it until its context ends.
type Agent struct {
	opts    Options
	client  outpostv1connect.AgentServiceClient
	session *session
	locks   keylock.Locker
	kinds   []string

	wake chan struct{}
	// desiredDue asks desiredLoop to fetch the desired state.
	desiredDue chan struct{}
	// savedDesired is the hash of the desired state last kept in
	// Options.DesiredCache; only desiredLoop touches it.
	savedDesired [32]byte
	// reconnected carries noteConnected's signal to keyLoop; connects is
	// wakeLoop's own count of connections.
	reconnected chan struct{}
	connects    int

	keysMu    sync.Mutex
	published string // the keys last published, as describeKeys puts them

	mu        sync.Mutex
	running   map[string]*attempt // task id → attempt
	maybeMore bool
}

// New returns an agent for opts.
func New(opts Options) (*Agent, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	a := &Agent{opts: opts, wake: make(chan struct{}, 1), desiredDue: make(chan struct{}, 1), reconnected: make(chan struct{}, 1), running: map[string]*attempt{}}
	a.session = &session{opts: &a.opts}
	a.client = outpostv1connect.NewAgentServiceClient(opts.HTTPClient, opts.HubURL,
		connect.WithInterceptors(authInterceptor{s: a.session}),
		connect.WithReadMaxBytes(maxResponseBytes),
	)
	a.session.client = a.client
	for k := range opts.Executors {
		a.kinds = append(a.kinds, k)
	}
	slices.Sort(a.kinds)
	return a, nil
}

// AgentID is the enrolled id, empty before Start has established it.
func (a *Agent) AgentID() string { return a.session.agentID() }

// Start enrolls or loads the identity, then watches, claims and runs tasks
// until ctx ends. It returns early with ErrDisabled if an operator disabled
// the agent, or with the enrollment error if it cannot establish an
// identity.
func (a *Agent) Start(ctx context.Context) error {
	// The kept desired state is reconciled from the start: establishing a
	// session needs the hub, which may be away for long.
	keptDesired := a.opts.Desired != nil && a.loadCachedDesired(ctx)
	if err := a.establish(ctx); err != nil {
		return err
	}
	// The keys come before the first claim: an implementation may learn
	// the environment from this call (agentcmd's secret executor does).
	var keysFailed bool
	if a.opts.EnvironmentKeys != nil {
		keysFailed = a.publishKeys(ctx)
	}
	a.opts.Logger.Info("agent started", "agent", a.AgentID(), "kinds", a.kinds, "concurrency", a.opts.Concurrency)
	g, gctx := errgroup.WithContext(ctx)
	if a.opts.EnvironmentKeys != nil {
		g.Go(func() error { return a.keyLoop(gctx, keysFailed) })
	}
	var workers sync.WaitGroup
	g.Go(func() error { return a.session.keepFresh(gctx) })
	g.Go(func() error { return a.wakeLoop(gctx) })
	g.Go(func() error { return a.dispatch(gctx, &workers) })
	g.Go(func() error { return a.heartbeat(gctx) })
	if a.opts.Desired != nil {
		g.Go(func() error { return a.desiredLoop(gctx, keptDesired) })
	}
	err := g.Wait()
	workers.Wait()
	if ctx.Err() != nil && !errors.Is(err, ErrDisabled) {
		return nil
	}
	return err
}

// establish retries transient failures (hub down, network) with backoff;
// refusals (bad token, disabled) and TLS failures end it.
func (a *Agent) establish(ctx context.Context) error {
	for n := int64(0); ; n++ {
		err := a.session.establish(ctx)
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrDisabled) || !isTransient(err) || ctx.Err() != nil {
			return err
		}
		a.opts.Logger.Warn("cannot reach the hub; retrying", "error", err, "attempt", n+1)
		if a.opts.Reconnect.Sleep(ctx, n) != nil {
			return err
		}
	}
}

// isTransient reports whether a call may succeed if tried again. A TLS
// failure (old protocol version, unknown authority, plain HTTP) is not: the
// agent refuses to talk to such a hub.
func isTransient(err error) bool {
	var (
		alert   tls.AlertError
		record  tls.RecordHeaderError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		verify  *tls.CertificateVerificationError
	)
	if errors.As(err, &alert) || errors.As(err, &record) || errors.As(err, &unknown) ||
		errors.As(err, &host) || errors.As(err, &invalid) || errors.As(err, &verify) {
		return false
	}
	// crypto/tls reports an alert from the peer (e.g. "protocol version"
	// from a hub without TLS 1.2) as a net.OpError with this Op.
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return false
	}
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeAborted,
		connect.CodeResourceExhausted, connect.CodeInternal, connect.CodeUnknown:
		return true
	}
	return false
}

func (a *Agent) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// wakeLoop holds the Watch stream, or long-polls where streams do not get
// through, and turns notices into claim signals and cancellations.
func (a *Agent) wakeLoop(ctx context.Context) error {
	failures := int64(0)
	usePoll := a.opts.ForcePoll
	var pollSince time.Time
	polled, pollOK := false, false
	for ctx.Err() == nil {
		if usePoll {
			if !a.opts.ForcePoll && a.opts.Now().Sub(pollSince) > retryWatchAfter {
				usePoll, failures = false, 0
				continue
			}
			if failures > 0 || !polled {
				// A new poll session claims first: work queued while no
				// poll was held produced no wake-up this agent saw.
				a.signal()
				polled = true
			}
			resp, err := a.client.Poll(ctx, connect.NewRequest(&outpostv1.PollRequest{Wait: durationpb.New(pollWait)}))
			if err != nil {
				if ctx.Err() != nil {
					return nil //nolint:nilerr // the agent is stopping; the poll error is its cancellation
				}
				if connect.CodeOf(err) == connect.CodePermissionDenied {
					return fmt.Errorf("%w: %w", ErrDisabled, err)
				}
				failures++
				_ = a.opts.Reconnect.Sleep(ctx, failures)
				continue
			}
			if failures > 0 || !pollOK {
				a.noteConnected()
				pollOK = true
			}
			failures = 0
			if resp.Msg.GetDesiredStateChanged() {
				a.RefreshDesired()
			}
			for _, id := range resp.Msg.GetCancelledTaskIds() {
				a.cancelTask(id)
			}
			// Claim after every poll: it also covers work that arrived
			// between two polls.
			a.signal()
			continue
		}
		delivered, err := a.watchOnce(ctx)
		if ctx.Err() != nil {
			return nil //nolint:nilerr // the agent is stopping; the stream error is its cancellation
		}
		if connect.CodeOf(err) == connect.CodePermissionDenied {
			return fmt.Errorf("%w: %w", ErrDisabled, err)
		}
		if delivered {
			failures = 0
		} else {
			failures++
		}
		a.opts.Logger.Info("watch stream ended; reconnecting", "error", err, "delivered", delivered)
		if !delivered && failures >= watchFailuresBeforePoll {
			a.opts.Logger.Warn("watch streams do not get through (a proxy may buffer them); long-polling instead")
			usePoll, pollSince, polled, pollOK = true, a.opts.Now(), false, false
			continue
		}
		_ = a.opts.Reconnect.Sleep(ctx, failures)
	}
	return nil
}

// watchOnce holds one Watch stream until it fails or stalls. delivered
// says whether any message came through.
func (a *Agent) watchOnce(ctx context.Context) (delivered bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// A watchdog ends the stream when the next message is overdue: a proxy
	// may buffer the stream, or cut it without a reset. It runs from before
	// the call, since a buffering proxy may not even pass the headers.
	errStalled := errors.New("no message from the hub in time")
	watchdog := time.AfterFunc(a.opts.FirstMessageTimeout, func() { cancel(errStalled) })
	defer watchdog.Stop()
	stream, err := a.client.Watch(ctx, connect.NewRequest(&outpostv1.WatchRequest{}))
	if err != nil {
		return false, a.streamErr(ctx, err)
	}
	defer func() { _ = stream.Close() }()
	// next is how long the stream may stay silent from here on. It is set by
	// the hub's keep-alive interval and holds across every later message:
	// the hub keeps to that interval however many notices come between,
	// and FirstMessageTimeout is shorter than it.
	next := a.opts.FirstMessageTimeout
	for stream.Receive() {
		switch ev := stream.Msg().GetEvent().(type) {
		case *outpostv1.WatchResponse_Keepalive:
			next = max(a.opts.FirstMessageTimeout, ev.Keepalive.GetInterval().AsDuration()*3/2+5*time.Second)
			if !delivered {
				a.signal() // claim what was queued before the stream opened
			}
		case *outpostv1.WatchResponse_WorkAvailable:
			a.signal()
		case *outpostv1.WatchResponse_TaskCancelled:
			a.cancelTask(ev.TaskCancelled.GetTaskId())
		case *outpostv1.WatchResponse_DesiredStateChanged:
			a.RefreshDesired()
		}
		if !delivered {
			a.noteConnected()
		}
		delivered = true
		watchdog.Reset(next)
	}
	err = stream.Err()
	if err == nil {
		err = errors.New("stream closed by the hub")
	}
	return delivered, a.streamErr(ctx, err)
}

// streamErr prefers the watchdog's reason over a bare cancellation.
func (a *Agent) streamErr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// dispatch claims tasks whenever it is signalled, a slot frees up while more
// work may be waiting, or the safety-net interval passes.
func (a *Agent) dispatch(ctx context.Context, workers *sync.WaitGroup) error {
	ticker := time.NewTicker(a.opts.ClaimInterval)
	defer ticker.Stop()
	failures := int64(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.wake:
		case <-ticker.C:
		}
		for ctx.Err() == nil {
			free := a.opts.Concurrency - a.runningCount()
			if free <= 0 {
				a.setMaybeMore(true)
				break
			}
			resp, err := a.client.Claim(ctx, connect.NewRequest(&outpostv1.ClaimRequest{MaxTasks: clamp32(free), Kinds: a.kinds}))
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				failures++
				a.opts.Logger.Warn("claim failed", "error", err)
				_ = a.opts.Reconnect.Sleep(ctx, failures)
				a.signal()
				break
			}
			failures = 0
			leases := resp.Msg.GetLeases()
			for _, l := range leases {
				a.start(ctx, workers, l)
			}
			if len(leases) < free {
				a.setMaybeMore(false)
				break
			}
		}
	}
}

func (a *Agent) runningCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.running)
}

func (a *Agent) setMaybeMore(v bool) {
	a.mu.Lock()
	a.maybeMore = v
	a.mu.Unlock()
}

func (a *Agent) cancelTask(id string) {
	a.mu.Lock()
	at := a.running[id]
	a.mu.Unlock()
	if at != nil {
		at.cancel(errCancelRequested)
	}
}

func (a *Agent) heartbeat(ctx context.Context) error {
	t := time.NewTicker(a.opts.HeartbeatInterval)
	defer t.Stop()
	send := func() {
		_, err := a.client.Heartbeat(ctx, connect.NewRequest(&outpostv1.HeartbeatRequest{
			Version: a.opts.Version, RunningTasks: clamp32(a.runningCount()), Capacity: clamp32(a.opts.Concurrency),
		}))
		if err != nil && ctx.Err() == nil {
			a.opts.Logger.Debug("heartbeat failed", "error", err)
		}
	}
	send()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			send()
		}
	}
}

// clamp32 converts a non-negative count for the wire.
func clamp32(n int) int32 {
	return int32(max(0, min(n, math.MaxInt32))) //nolint:gosec // clamped to the int32 range
}
