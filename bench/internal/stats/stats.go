// Package stats summarizes and formats the benchmarks' measurements:
// nearest-rank quantiles of timings, ratios, and durations and sizes
// written the way bench/RESULTS.md shows them.
package stats

import (
	"fmt"
	"slices"
	"time"
)

// Sample is a set of timings of one measurement.
type Sample []time.Duration

// Quantile returns the nearest-rank q-quantile (0 < q ≤ 1): with few runs
// p90 is the slowest or second slowest run, never an interpolation.
func (s Sample) Quantile(q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	sorted := slices.Clone(s)
	slices.Sort(sorted)
	rank := int(q*float64(len(sorted)) + 0.999999)
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// Median is the nearest-rank 0.5-quantile.
func (s Sample) Median() time.Duration { return s.Quantile(0.5) }

// P90 is the nearest-rank 0.9-quantile.
func (s Sample) P90() time.Duration { return s.Quantile(0.9) }

// Ratio is a/b, 0 when b is 0.
func Ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Secs formats a duration in seconds, or milliseconds below a second,
// with sensible precision; "—" for 0.
func Secs(d time.Duration) string {
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

// MiB formats a size in KiB as MiB; "—" for 0.
func MiB(kib int64) string {
	if kib == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}

// Verdict is "yes" for a target met and a bold "no" otherwise.
func Verdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}
