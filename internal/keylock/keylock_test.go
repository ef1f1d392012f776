package keylock

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestOverlappingSetsNeverRunTogether(t *testing.T) {
	var l Locker
	var inA, inB atomic.Int32
	var wg sync.WaitGroup
	sets := [][]string{{"a"}, {"a", "b"}, {"b", "a"}, {"b"}}
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys := sets[i%len(sets)]
			unlock, err := l.Lock(t.Context(), keys)
			if err != nil {
				t.Error(err)
				return
			}
			defer unlock()
			for _, k := range keys {
				c := &inA
				if k == "b" {
					c = &inB
				}
				if c.Add(1) != 1 {
					t.Errorf("key %s held twice", k)
				}
				defer c.Add(-1)
			}
		}()
	}
	wg.Wait()
	if l.Held() != 0 {
		t.Fatalf("%d keys left behind", l.Held())
	}
}

func TestDisjointSetsRunTogether(t *testing.T) {
	var l Locker
	unlock, err := l.Lock(t.Context(), []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	u2, err := l.Lock(ctx, []string{"b"})
	if err != nil {
		t.Fatalf("disjoint key blocked: %v", err)
	}
	u2()
}

func TestLockGivesUpWhenContextEnds(t *testing.T) {
	var l Locker
	unlock, _ := l.Lock(t.Context(), []string{"a", "b"})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := l.Lock(ctx, []string{"b"}); err == nil {
		t.Fatal("Lock succeeded on a held key")
	}
	unlock()
	if l.Held() != 0 {
		t.Fatalf("%d keys left behind", l.Held())
	}
}
