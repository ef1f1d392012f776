package stats

import (
	"testing"
	"time"
)

func TestQuantileIsNearestRank(t *testing.T) {
	ms := func(v ...int) Sample {
		s := make(Sample, len(v))
		for i, n := range v {
			s[i] = time.Duration(n) * time.Millisecond
		}
		return s
	}
	for _, tc := range []struct {
		name string
		s    Sample
		q    float64
		want time.Duration
	}{
		{"an empty sample has no quantile", nil, 0.5, 0},
		{"the median of an odd sample is its middle", ms(30, 10, 20), 0.5, 20 * time.Millisecond},
		{"the median of an even sample is the lower middle", ms(40, 10, 30, 20), 0.5, 20 * time.Millisecond},
		{"p90 of five runs is the slowest", ms(5, 1, 4, 2, 3), 0.9, 5 * time.Millisecond},
		{"p99 of 200 is the second slowest", func() Sample {
			s := make(Sample, 200)
			for i := range s {
				s[i] = time.Duration(i+1) * time.Millisecond
			}
			return s
		}(), 0.99, 198 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.s.Quantile(tc.q); got != tc.want {
				t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
}
