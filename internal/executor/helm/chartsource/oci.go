package chartsource

import (
	"context"
	"errors"
	"fmt"
)

func (t *target) checkOCI() error { return nil }

func (f *Fetcher) fetchOCI(ctx context.Context, t *target) (*Chart, error) {
	return nil, fmt.Errorf("chartsource: repository %s: %w", t.display, errors.ErrUnsupported)
}
