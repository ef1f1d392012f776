package manifests

import (
	"context"
	"errors"
	"fmt"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/kube"
)

// Sentinel errors callers branch on with errors.Is. Each failure wraps one
// of them and, where no retry can help, an executor.TerminalError.
var (
	// ErrInvalidBundle reports a bundle that does not decode, is over a
	// bound, or holds an object that cannot be resolved.
	ErrInvalidBundle = errors.New("invalid bundle")
	// ErrArtifact reports an artifact that is not one of the task's or
	// that could not be read in full.
	ErrArtifact = errors.New("bundle artifact")
	// ErrDenied reports an object the agent's deny list rejects.
	ErrDenied = errors.New("denied by the agent's deny list")
	// ErrForbidden reports a verb the agent's identity may not use.
	ErrForbidden = errors.New("missing permission")
	// ErrDryRun reports an object the API server rejected in a dry run.
	ErrDryRun = errors.New("server-side dry-run failed")
	// ErrNotEstablished reports a CustomResourceDefinition that did not
	// become Established in time, or whose names were not accepted.
	ErrNotEstablished = errors.New("CustomResourceDefinition not established")
	// ErrStaleAttempt reports an attempt that a newer attempt of the same
	// task, or another task, has superseded in the release's inventory.
	ErrStaleAttempt = errors.New("stale attempt")
	// ErrInventory reports an inventory that cannot be read or written.
	ErrInventory = errors.New("release inventory")
)

// apiError wraps err from an API call about what, marking it terminal when
// a retry cannot help (forbidden, invalid, bad request) and keeping it
// retryable otherwise (timeouts, 5xx, conflicts, throttling).
func apiError(ctx context.Context, op, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("manifests: %s %s: %w", op, what, context.Cause(ctx))
	}
	wrapped := fmt.Errorf("manifests: %s %s: %w", op, what, err)
	if kube.PermanentAPIError(err) {
		return executor.Terminal(wrapped)
	}
	return wrapped
}
