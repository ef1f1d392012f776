package backoff

import (
	"context"
	"testing"
	"time"
)

func TestPolicy(t *testing.T) {
	p := Policy{Base: 100 * time.Millisecond, Max: time.Second}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for n, w := range want {
		if got := p.Cap(int64(n)); got != w*time.Millisecond {
			t.Errorf("Cap(%d) = %v, want %v", n, got, w*time.Millisecond)
		}
	}
	p.Jitter = true
	for n := range int64(50) {
		if d := p.Delay(n); d < 0 || d > p.Cap(n) {
			t.Fatalf("jittered Delay(%d) = %v outside [0, %v]", n, d, p.Cap(n))
		}
	}
	if got := p.Cap(1 << 40); got != time.Second {
		t.Fatalf("huge n: Cap = %v, want the max", got)
	}
}

func TestSleepStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := (Policy{Base: time.Hour, Max: time.Hour}).Sleep(ctx, 0); err == nil {
		t.Fatal("Sleep returned nil on a cancelled context")
	}
}
