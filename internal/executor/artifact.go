package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Artifact errors, wrapped with the digest they concern.
var (
	// ErrArtifact reports an artifact that is not one of the task's or that
	// could not be read in full or verified.
	ErrArtifact = errors.New("artifact")
	// ErrArtifactTooLarge reports an artifact over the caller's cap.
	ErrArtifactTooLarge = errors.New("artifact too large")
)

// ReadArtifact reads the task's artifact digest to its end, at most max
// bytes, and checks that it verified against its digest. An artifact the
// task did not declare, a task without a fetcher and an artifact over max
// are terminal; a failed fetch or verification may be retried.
func ReadArtifact(ctx context.Context, t Task, digest string, max int64) ([]byte, error) {
	if !slices.Contains(t.Artifacts, digest) {
		return nil, Terminal(fmt.Errorf("%w: %s is not among the task's artifacts; attach it to the task", ErrArtifact, digest))
	}
	if t.Fetcher == nil {
		return nil, Terminal(fmt.Errorf("%w: %s: the agent has no artifact fetcher", ErrArtifact, digest))
	}
	rc, err := t.Fetcher.Fetch(ctx, digest)
	if err != nil {
		return nil, fmt.Errorf("%w: fetch %s: %w", ErrArtifact, digest, err)
	}
	data, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		_ = rc.Close()
		return nil, fmt.Errorf("%w: read %s: %w", ErrArtifact, digest, err)
	}
	if int64(len(data)) > max {
		_ = rc.Close()
		return nil, Terminal(fmt.Errorf("%w: %s is larger than the %d bytes the agent accepts", ErrArtifactTooLarge, digest, max))
	}
	// Close verifies the digest; its failure means the bytes are not the
	// artifact's.
	if err := rc.Close(); err != nil {
		return nil, fmt.Errorf("%w: verify %s: %w", ErrArtifact, digest, err)
	}
	return data, nil
}
