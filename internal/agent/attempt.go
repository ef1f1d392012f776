package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/executor"
)

// Reasons an attempt's context is cancelled.
var (
	errCancelRequested = errors.New("task cancelled by an operator")
	errLeaseLost       = errors.New("lease lost: another attempt may own the task")
	errShuttingDown    = errors.New("agent shutting down")
)

// maxReportBytes keeps a result inside the hub's request cap.
const maxReportBytes = 3 << 20

// attempt is one leased attempt of one task.
type attempt struct {
	lease  *outpostv1.Lease
	cancel context.CancelCauseFunc
}

// start runs a lease on its own goroutine.
func (a *Agent) start(ctx context.Context, workers *sync.WaitGroup, l *outpostv1.Lease) {
	actx, cancel := context.WithCancelCause(ctx)
	at := &attempt{lease: l, cancel: cancel}
	a.mu.Lock()
	a.running[l.GetTask().GetId()] = at
	a.mu.Unlock()
	workers.Add(1)
	go func() {
		defer workers.Done()
		defer cancel(nil)
		a.run(ctx, actx, at)
		a.mu.Lock()
		delete(a.running, l.GetTask().GetId())
		more := a.maybeMore
		a.mu.Unlock()
		if more {
			a.signal()
		}
	}()
}

// run executes one attempt: wait for the task's conflict keys, keep the
// lease renewed, execute, and report.
func (a *Agent) run(agentCtx, ctx context.Context, at *attempt) {
	task := at.lease.GetTask()
	log := a.opts.Logger.With("task", task.GetId(), "kind", task.GetKind(), "epoch", at.lease.GetEpoch())

	renewDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		a.renewLoop(ctx, at)
	}()
	defer func() {
		at.cancel(nil)
		<-renewDone
	}()

	unlock, err := a.locks.Lock(ctx, task.GetConflictKeys())
	if err != nil {
		a.finish(agentCtx, at, nil, context.Cause(ctx), log)
		return
	}
	defer unlock()
	a.forgetRemoved(task)

	execCtx := ctx
	if dl := task.GetDeadline(); dl != nil {
		var cancel context.CancelFunc
		execCtx, cancel = context.WithDeadline(ctx, dl.AsTime())
		defer cancel()
	}
	red := a.opts.NewRedactor()
	exec := a.opts.Executors[task.GetKind()]
	if a.opts.OnExecutorStart != nil {
		a.opts.OnExecutorStart(task.GetId(), at.lease.GetEpoch())
	}
	log.Debug("executing")
	var result json.RawMessage
	if exec == nil {
		err = executor.Terminal(fmt.Errorf("this agent has no executor for task kind %q", task.GetKind()))
	} else {
		result, err = exec.Execute(execCtx, executor.Task{
			ID:        task.GetId(),
			Kind:      task.GetKind(),
			Spec:      task.GetSpec(),
			Attempt:   at.lease.GetEpoch(),
			Artifacts: task.GetArtifacts(),
			Fetcher:   &artifactFetcher{client: a.client, taskID: task.GetId()},
			Redact:    red,
		})
	}
	if err != nil && execCtx.Err() != nil {
		if cause := context.Cause(ctx); cause != nil {
			err = cause
		} else if errors.Is(execCtx.Err(), context.DeadlineExceeded) {
			err = executor.Terminal(fmt.Errorf("task deadline exceeded: %w", err))
		}
	}
	a.finish(agentCtx, at, red.Bytes(result), redactErr(red, err), log)
}

// redactErr keeps the error's classification while scrubbing its text.
func redactErr(red Redactor, err error) error {
	if err == nil {
		return nil
	}
	msg := red.String(err.Error())
	switch {
	case errors.Is(err, errCancelRequested), errors.Is(err, errLeaseLost), errors.Is(err, errShuttingDown):
		return err
	case executor.IsTerminal(err):
		return executor.Terminal(errors.New(msg))
	}
	return errors.New(msg)
}

// finish reports the outcome until the hub records it, the epoch turns out
// stale, or the agent stops.
func (a *Agent) finish(agentCtx context.Context, at *attempt, result []byte, err error, log interface {
	Info(string, ...any)
	Warn(string, ...any)
}) {
	task := at.lease.GetTask()
	req := &outpostv1.ReportResultRequest{TaskId: task.GetId(), Epoch: at.lease.GetEpoch(), Result: result}
	switch {
	case err == nil:
		req.Outcome = outpostv1.Outcome_OUTCOME_SUCCEEDED
	case errors.Is(err, errLeaseLost):
		log.Warn("attempt abandoned", "reason", err)
		return
	case errors.Is(err, errCancelRequested):
		req.Outcome = outpostv1.Outcome_OUTCOME_CANCELLED
		req.Error = err.Error()
	default:
		req.Outcome = outpostv1.Outcome_OUTCOME_FAILED
		req.Error = err.Error()
		req.Retryable = !executor.IsTerminal(err)
	}
	if len(req.Result) > maxReportBytes {
		req.Result, _ = json.Marshal(map[string]any{"truncated": true, "bytes": len(result)})
	}
	ctx := agentCtx
	if agentCtx.Err() != nil {
		// Shutting down: one quick try, so the hub can retry the task at
		// once rather than after the lease expires.
		req.Outcome, req.Error, req.Retryable = outpostv1.Outcome_OUTCOME_FAILED, errShuttingDown.Error(), true
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(agentCtx), 5*time.Second)
		defer cancel()
	}
	for n := int64(0); ; n++ {
		_, rerr := a.client.ReportResult(ctx, connect.NewRequest(req))
		if rerr == nil {
			log.Info("reported", "outcome", req.Outcome.String(), "error", req.Error)
			return
		}
		switch connect.CodeOf(rerr) {
		case connect.CodeAborted, connect.CodeNotFound, connect.CodeInvalidArgument, connect.CodePermissionDenied:
			log.Warn("hub refused the report", "error", rerr)
			return
		}
		if ctx.Err() != nil || agentCtx.Err() != nil {
			return
		}
		if a.opts.Reconnect.Sleep(ctx, n) != nil {
			return
		}
	}
}

// renewLoop renews the lease at a third of its duration. It cancels the
// attempt when the hub says the lease is gone or asks for cancellation, and
// when renewals keep failing until the lease would run out, so that a
// partitioned agent stops before another attempt can start.
func (a *Agent) renewLoop(ctx context.Context, at *attempt) {
	dur := at.lease.GetDuration().AsDuration()
	if dur <= 0 {
		dur = time.Minute
	}
	expires := at.lease.GetExpiresAt().AsTime()
	// The local expiry assumes the hub's clock; a margin covers skew and
	// the time a final report needs.
	margin := dur / 6
	localExpiry := a.opts.Now().Add(time.Until(expires)).Add(-margin)
	if time.Until(expires) > dur || time.Until(expires) <= 0 {
		localExpiry = a.opts.Now().Add(dur - margin)
	}
	interval := dur / 3
	t := time.NewTimer(interval)
	defer t.Stop()
	failures := int64(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		resp, err := a.client.RenewLease(ctx, connect.NewRequest(&outpostv1.RenewLeaseRequest{
			TaskId: at.lease.GetTask().GetId(), Epoch: at.lease.GetEpoch(),
		}))
		switch {
		case err == nil:
			failures = 0
			localExpiry = a.opts.Now().Add(dur - margin)
			if resp.Msg.GetCancelRequested() {
				at.cancel(errCancelRequested)
				return
			}
			t.Reset(interval)
		case ctx.Err() != nil:
			return
		case connect.CodeOf(err) == connect.CodeAborted || connect.CodeOf(err) == connect.CodeNotFound:
			at.cancel(errLeaseLost)
			return
		default:
			failures++
			if !a.opts.Now().Before(localExpiry) {
				at.cancel(errLeaseLost)
				return
			}
			t.Reset(min(a.opts.Reconnect.Delay(failures), max(localExpiry.Sub(a.opts.Now()), time.Millisecond)))
		}
	}
}
