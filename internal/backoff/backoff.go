package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy is an exponential backoff: the n-th wait (n from 0) is drawn
// uniformly from [0, min(Max, Base·2ⁿ)] when Jitter is on ("full jitter",
// so that many clients restarting together spread out), or is exactly that
// cap when it is off.
type Policy struct {
	Base   time.Duration
	Max    time.Duration
	Jitter bool
}

// Cap returns the upper bound of the n-th wait.
func (p Policy) Cap(n int64) time.Duration {
	if n < 0 {
		n = 0
	}
	d := p.Base
	for i := int64(0); i < n && d < p.Max; i++ {
		d *= 2
	}
	return min(d, p.Max)
}

// Delay returns the n-th wait.
func (p Policy) Delay(n int64) time.Duration {
	c := p.Cap(n)
	if !p.Jitter || c <= 0 {
		return c
	}
	return rand.N(c + 1) //nolint:gosec // jitter needs no unpredictability
}

// Sleep waits the n-th delay or until ctx ends, whichever is first.
func (p Policy) Sleep(ctx context.Context, n int64) error {
	t := time.NewTimer(p.Delay(n))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
