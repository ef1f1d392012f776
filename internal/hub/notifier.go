package hub

import (
	"sync"
	"time"

	"github.com/outposthq/outpost/internal/store"
)

// notifier fans store wake-ups out to the agents of one environment that
// are waiting in Watch or Poll, and tracks which agents are connected.
type notifier struct {
	mu     sync.Mutex
	subs   map[string]map[*subscription]struct{} // environment id → waiters
	active map[string]*presence                  // agent id → presence
	now    func() time.Time
}

type presence struct {
	open     int
	lastSeen time.Time
}

type subscription struct {
	ch chan store.Wakeup
}

func newNotifier(now func() time.Time) *notifier {
	return &notifier{subs: map[string]map[*subscription]struct{}{}, active: map[string]*presence{}, now: now}
}

// subscribe registers a waiter of envID for agentID; the returned function
// removes it. The channel holds a few wake-ups; a slow waiter loses extras,
// which is harmless because a wake-up only says "claim now".
func (n *notifier) subscribe(envID, agentID string) (<-chan store.Wakeup, func()) {
	s := &subscription{ch: make(chan store.Wakeup, 16)}
	n.mu.Lock()
	if n.subs[envID] == nil {
		n.subs[envID] = map[*subscription]struct{}{}
	}
	n.subs[envID][s] = struct{}{}
	p := n.active[agentID]
	if p == nil {
		p = &presence{}
		n.active[agentID] = p
	}
	p.open++
	p.lastSeen = n.now()
	n.mu.Unlock()
	return s.ch, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		delete(n.subs[envID], s)
		if len(n.subs[envID]) == 0 {
			delete(n.subs, envID)
		}
		p.open--
		p.lastSeen = n.now()
	}
}

// publish delivers w to every waiter of its environment.
func (n *notifier) publish(w store.Wakeup) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for s := range n.subs[w.EnvironmentID] {
		select {
		case s.ch <- w:
		default:
			// Full: a wake-up is already pending for this waiter. A
			// cancellation is not lost either: the renewal answer says
			// cancel_requested too.
		}
	}
}

// seen records activity by an agent outside Watch and Poll.
func (n *notifier) seen(agentID string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.active[agentID]
	if p == nil {
		p = &presence{}
		n.active[agentID] = p
	}
	p.lastSeen = n.now()
}

// connected reports whether the agent holds a Watch or Poll open, or called
// recently.
func (n *notifier) connected(agentID string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.active[agentID]
	return p != nil && (p.open > 0 || n.now().Sub(p.lastSeen) < connectedWindow)
}

// connectedCount counts connected agents and forgets long-gone ones.
func (n *notifier) connectedCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	now := n.now()
	for id, p := range n.active {
		switch {
		case p.open > 0 || now.Sub(p.lastSeen) < connectedWindow:
			c++
		case now.Sub(p.lastSeen) > time.Hour:
			delete(n.active, id)
		}
	}
	return c
}
