package keylock

import (
	"context"
	"slices"
	"sync"
)

// Locker hands out locks over sets of string keys. Acquiring keys in sorted
// order makes overlapping sets safe from deadlock. The zero value is ready.
type Locker struct {
	mu    sync.Mutex
	locks map[string]*entry
}

type entry struct {
	ch   chan struct{} // holds one token while free
	refs int
}

// Lock acquires every key in keys, waiting until each is free or ctx ends.
// On success it returns the function that releases them all.
func (l *Locker) Lock(ctx context.Context, keys []string) (func(), error) {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	var held []string
	release := func() {
		for _, k := range held {
			l.unlock(k)
		}
	}
	for _, k := range keys {
		if err := l.lock(ctx, k); err != nil {
			release()
			return nil, err
		}
		held = append(held, k)
	}
	return release, nil
}

func (l *Locker) lock(ctx context.Context, key string) error {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = make(map[string]*entry)
	}
	e, ok := l.locks[key]
	if !ok {
		e = &entry{ch: make(chan struct{}, 1)}
		e.ch <- struct{}{}
		l.locks[key] = e
	}
	e.refs++
	l.mu.Unlock()
	select {
	case <-e.ch:
		return nil
	case <-ctx.Done():
		l.drop(key, e)
		return ctx.Err()
	}
}

func (l *Locker) unlock(key string) {
	l.mu.Lock()
	e := l.locks[key]
	l.mu.Unlock()
	e.ch <- struct{}{}
	l.drop(key, e)
}

func (l *Locker) drop(key string, e *entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.refs--
	if e.refs == 0 {
		delete(l.locks, key)
	}
}

// Held reports how many keys are locked or awaited, for tests and metrics.
func (l *Locker) Held() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.locks)
}
