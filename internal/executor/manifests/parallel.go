package manifests

import (
	"context"
	"errors"
	"fmt"

	"github.com/outposthq/outpost/internal/executor"
)

// forEach runs fn on every item with at most limit calls in flight (see
// executor.ForEach); a run cut short by ctx says it stopped.
func forEach[T any](ctx context.Context, limit int, items []T, fn func(context.Context, T) error) error {
	err := executor.ForEach(ctx, limit, items, fn)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Cause(ctx)) {
		return fmt.Errorf("manifests: stopped: %w", err)
	}
	return err
}
