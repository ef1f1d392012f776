package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
	"github.com/outposthq/outpost/internal/backoff"
)

// waitFlags are --wait and --timeout of the commands whose work an agent
// does later (releases, secrets).
type waitFlags struct {
	wait    bool
	timeout time.Duration
}

// bind adds the flags: --wait waits until what, and exits 1 if failure.
func (w *waitFlags) bind(cmd *cobra.Command, what, failure string) {
	cmd.Flags().BoolVar(&w.wait, "wait", false, "wait until "+what+"; exit 1 if "+failure)
	cmd.Flags().DurationVar(&w.timeout, "timeout", 0, "with --wait: give up after this long and exit 2 (default: wait as long as it takes)")
}

func (w *waitFlags) check(op string) error {
	if w.timeout < 0 {
		return fmt.Errorf("%s: --timeout must not be negative", op)
	}
	if w.timeout > 0 && !w.wait {
		return fmt.Errorf("%s: --timeout goes with --wait", op)
	}
	return nil
}

func (a *app) newTaskWaitCommand() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait ID [--timeout D]",
		Short: "Wait for a task to finish and print it",
		Long: `wait polls the task, backing off up to a few seconds between polls, until it
succeeds, fails or is cancelled, then prints it.

Exit codes: 0 the task succeeded, 1 it failed or was cancelled (or the wait
itself failed), 2 the timeout passed first.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout < 0 {
				return errors.New("task wait: --timeout must not be negative")
			}
			client, _, err := a.dial()
			if err != nil {
				return err
			}
			return a.waitAndReport(cmd.Context(), client, args[0], timeout)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long and exit 2 (default: wait as long as it takes)")
	return cmd
}

// waitAndReport waits for task id to finish, prints it, and returns an
// ExitError unless it succeeded: code 1 for failed or cancelled, 2 when
// timeout (if positive) passed first.
func (a *app) waitAndReport(ctx context.Context, client outpostv1connect.OperatorServiceClient, id string, timeout time.Duration) error {
	task, err := a.waitTask(ctx, client, id, timeout)
	if task != nil {
		if perr := a.printMessage(task, func(w io.Writer) { a.taskDetail(w, task) }); perr != nil {
			return perr
		}
	}
	if errors.Is(err, ErrWaitTimeout) {
		return &ExitError{Code: ExitTimeout, Err: err}
	}
	if err != nil {
		return err
	}
	switch task.GetState() {
	case v1.TaskState_TASK_STATE_FAILED:
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("%w: %s after %s: %s", ErrTaskFailed, id, plural(task.GetAttempt(), "attempt"), orDash(task.GetError()))}
	case v1.TaskState_TASK_STATE_CANCELLED:
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("%w: %s", ErrTaskCancelled, id)}
	}
	return nil
}

// waitTask polls GetTask with capped exponential backoff until the task is
// terminal. It returns the last task seen; on timeout the error wraps
// ErrWaitTimeout. Transient hub errors are retried, others end the wait.
func (a *app) waitTask(ctx context.Context, client outpostv1connect.OperatorServiceClient, id string, timeout time.Duration) (*v1.Task, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, ErrWaitTimeout)
		defer cancel()
	}
	policy := backoff.Policy{Base: a.opts.PollInterval, Max: a.opts.MaxPollInterval}
	var last *v1.Task
	for n := int64(0); ; n++ {
		res, err := client.GetTask(ctx, connect.NewRequest(&v1.GetTaskRequest{Id: id}))
		switch {
		case ctx.Err() != nil:
			err := a.waitEnded(ctx, client, id, &last, timeout)
			return last, err
		case err == nil:
			last = res.Msg.GetTask()
			if isTerminal(last.GetState()) {
				return last, nil
			}
		case !transient(err):
			return last, apiError("wait for task "+id, err)
		}
		if policy.Sleep(ctx, n) != nil {
			err := a.waitEnded(ctx, client, id, &last, timeout)
			return last, err
		}
	}
}

// finalFetchTimeout bounds the one look at a task after a wait timed out.
const finalFetchTimeout = 5 * time.Second

// waitEnded explains why a wait's context ended: its own timeout, or the
// caller's cancellation (Ctrl-C). After a timeout it looks at the task once
// more, so the caller is shown its state even when the timeout passed
// before the first answer.
func (a *app) waitEnded(ctx context.Context, client outpostv1connect.OperatorServiceClient, id string, last **v1.Task, timeout time.Duration) error {
	if !errors.Is(context.Cause(ctx), ErrWaitTimeout) {
		return fmt.Errorf("wait for task %s: %w", id, context.Cause(ctx))
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalFetchTimeout)
	defer cancel()
	if res, err := client.GetTask(fctx, connect.NewRequest(&v1.GetTaskRequest{Id: id})); err == nil {
		*last = res.Msg.GetTask()
		if isTerminal((*last).GetState()) {
			return nil
		}
	}
	return waitTimedOut(id, *last, timeout)
}

func waitTimedOut(id string, last *v1.Task, timeout time.Duration) error {
	state := "not seen yet"
	if last != nil {
		state = "still " + stateName(last.GetState())
	}
	return fmt.Errorf("%w %s after %v (%s); wait longer with `outpost task wait %s --timeout D`", ErrWaitTimeout, id, timeout, state, id)
}

// transient reports whether a failed call is worth repeating.
func transient(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeResourceExhausted, connect.CodeAborted:
		return true
	}
	return false
}

func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
