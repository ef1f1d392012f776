package main

import (
	"fmt"
	"slices"
	"time"
)

// sample is a set of timings of one measurement.
type sample []time.Duration

// quantile returns the nearest-rank q-quantile (0 < q ≤ 1): with few runs
// p90 is the slowest or second slowest run, never an interpolation.
func (s sample) quantile(q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	sorted := slices.Clone(s)
	slices.Sort(sorted)
	rank := int(q*float64(len(sorted)) + 0.999999)
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func (s sample) median() time.Duration { return s.quantile(0.5) }
func (s sample) p90() time.Duration    { return s.quantile(0.9) }

// ratio is a/b, 0 when b is 0.
func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// secs formats a duration in seconds with sensible precision.
func secs(d time.Duration) string {
	switch {
	case d == 0:
		return "—"
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	case d < 10*time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
}

func mib(kib int64) string {
	if kib == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}

func verdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}
