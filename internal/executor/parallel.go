package executor

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// ForEach runs fn on every item with at most limit calls in flight. It
// stops starting new calls after the first error or when ctx ends, and
// returns the first error, or ctx's cause when ctx ended.
func ForEach[T any](ctx context.Context, limit int, items []T, fn func(context.Context, T) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	for _, it := range items {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return fn(gctx, it) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return context.Cause(ctx)
}
