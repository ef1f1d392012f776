package sqlite

import (
	"context"
	"sync"

	"github.com/outposthq/outpost/internal/store"
)

// broker fans wake-ups out to the subscribers of this process. Publishing
// never blocks a writer: each subscriber keeps a set of pending wake-ups
// (a repeat of a pending one adds nothing) and a signal.
type broker struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed chan struct{}
	once   sync.Once
}

type subscriber struct {
	mu      sync.Mutex
	pending []store.Wakeup
	signal  chan struct{}
}

func newBroker() *broker {
	return &broker{subs: make(map[*subscriber]struct{}), closed: make(chan struct{})}
}

func (b *broker) publish(ws []store.Wakeup) {
	if len(ws) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for sub := range b.subs {
		sub.add(ws)
	}
}

func (b *broker) close() { b.once.Do(func() { close(b.closed) }) }

func (sub *subscriber) add(ws []store.Wakeup) {
	sub.mu.Lock()
next:
	for _, w := range ws {
		for _, p := range sub.pending {
			if p == w {
				continue next
			}
		}
		sub.pending = append(sub.pending, w)
	}
	sub.mu.Unlock()
	select {
	case sub.signal <- struct{}{}:
	default:
	}
}

func (sub *subscriber) take() []store.Wakeup {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	ws := sub.pending
	sub.pending = nil
	return ws
}

// ListenWakeups calls fn for every wake-up emitted by this store after it
// started listening, until ctx ends or the store is closed; it then
// returns nil. fn runs on the listener's goroutine, one call at a time.
func (s *Store) ListenWakeups(ctx context.Context, fn func(store.Wakeup)) error {
	sub := &subscriber{signal: make(chan struct{}, 1)}
	s.wake.mu.Lock()
	s.wake.subs[sub] = struct{}{}
	s.wake.mu.Unlock()
	defer func() {
		s.wake.mu.Lock()
		delete(s.wake.subs, sub)
		s.wake.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake.closed:
			return nil
		case <-sub.signal:
			for _, w := range sub.take() {
				fn(w)
			}
		}
	}
}
