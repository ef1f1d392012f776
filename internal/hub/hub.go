package hub

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
	"github.com/outposthq/outpost/internal/auth"
	"github.com/outposthq/outpost/internal/store"
)

// Hub serves the agent and operator APIs over one store. Several hubs may
// share a PostgreSQL store; each runs its own background loops.
type Hub struct {
	opts     Options
	store    store.Store
	tokens   *auth.TokenAuthority
	verified *verifiedTokens
	notifier *notifier
	metrics  *metrics
	gatherer prometheus.Gatherer

	envMu    sync.Mutex
	envNames map[string]store.Environment // environment id → row (immutable)
}

// New builds a hub; it loads or creates the token signing key.
func New(ctx context.Context, opts Options) (*Hub, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	key := opts.SigningKey
	if key == nil {
		seed := make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, fmt.Errorf("hub: signing key: %w", err)
		}
		stored, err := opts.Store.GetOrCreateSetting(ctx, signingKeySetting, seed)
		if err != nil {
			return nil, fmt.Errorf("hub: signing key: %w", err)
		}
		if len(stored) != ed25519.SeedSize {
			return nil, fmt.Errorf("hub: signing key in store is %d bytes, want %d", len(stored), ed25519.SeedSize)
		}
		key = ed25519.NewKeyFromSeed(stored)
	}
	tokens, err := auth.NewTokenAuthority(auth.TokenOptions{
		Key: key, Issuer: opts.Issuer, Audience: opts.Audience, TTL: opts.AccessTokenTTL, Now: opts.Now,
	})
	if err != nil {
		return nil, err
	}
	n := newNotifier(opts.Now)
	h := &Hub{opts: opts, store: opts.Store, tokens: tokens, verified: newVerifiedTokens(), notifier: n, envNames: map[string]store.Environment{}}
	if g, ok := opts.Registerer.(prometheus.Gatherer); ok {
		h.gatherer = g
	}
	if h.metrics, err = newMetrics(opts.Registerer, n); err != nil {
		return nil, fmt.Errorf("hub: metrics: %w", err)
	}
	return h, nil
}

// Handler serves both APIs, /metrics, /healthz and /readyz.
func (h *Hub) Handler() http.Handler { return h.handler(true) }

// APIHandler is Handler without /metrics, for a hub that serves its
// metrics on a listener of their own (MetricsHandler): the API's port is
// the one an Ingress exposes, and /metrics answers without credentials.
func (h *Hub) APIHandler() http.Handler { return h.handler(false) }

// MetricsHandler serves /metrics and /healthz, for a listener that only a
// monitoring system reaches.
func (h *Hub) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	if h.gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(h.gatherer, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

func (h *Hub) handler(metrics bool) http.Handler {
	mux := http.NewServeMux()
	handlerOpts := []connect.HandlerOption{
		connect.WithReadMaxBytes(h.opts.MaxRequestBytes),
		connect.WithSendMaxBytes(h.opts.MaxRequestBytes),
		// Most messages (keep-alives, claims, acks) are a few dozen bytes;
		// gzip only costs CPU on those.
		connect.WithCompressMinBytes(compressMinBytes),
	}
	mux.Handle(outpostv1connect.NewAgentServiceHandler(&agentService{h: h}, handlerOpts...))
	mux.Handle(outpostv1connect.NewOperatorServiceHandler(&operatorService{h: h}, handlerOpts...))
	if metrics && h.gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(h.gatherer, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if _, err := h.store.Stats(r.Context()); err != nil {
			http.Error(w, "store unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// Start gives agents a grace period on their leases, then runs the
// background loops (wake-up fan-out, lease sweeper, metrics, garbage
// collection) until ctx ends.
func (h *Hub) Start(ctx context.Context) error {
	// Leases held when the hub stopped carry on: agents get a full lease to
	// reconnect and renew before anything is re-queued.
	if n, err := h.store.ExtendLeases(ctx, h.opts.Now().Add(h.opts.LeaseDuration)); err != nil {
		return fmt.Errorf("hub: extend leases: %w", err)
	} else if n > 0 {
		h.opts.Logger.Info("extended leases after start", "leases", n)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return h.store.ListenWakeups(gctx, h.notifier.publish)
	})
	g.Go(func() error { return h.every(gctx, h.opts.SweepInterval, h.sweep) })
	g.Go(func() error { return h.every(gctx, 5*time.Second, h.refreshQueueDepth) })
	g.Go(func() error { return h.every(gctx, h.opts.GCInterval, h.collectGarbage) })
	err := g.Wait()
	if ctx.Err() != nil {
		return nil //nolint:nilerr // stopped by the caller: not a failure
	}
	return err
}

func (h *Hub) every(ctx context.Context, d time.Duration, fn func(context.Context)) error {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			fn(ctx)
		}
	}
}

func (h *Hub) retryBackoff(attempt int64) time.Duration {
	return h.opts.RetryBackoff.Delay(attempt - 1)
}

func (h *Hub) sweep(ctx context.Context) {
	res, err := h.store.Sweep(ctx, h.opts.Now(), h.retryBackoff)
	if err != nil {
		if ctx.Err() == nil {
			h.opts.Logger.Warn("lease sweep failed", "error", err)
		}
		return
	}
	if res.Requeued+res.Failed+res.Cancelled > 0 {
		h.opts.Logger.Info("expired leases", "requeued", res.Requeued, "failed", res.Failed, "cancelled", res.Cancelled)
	}
}

func (h *Hub) refreshQueueDepth(ctx context.Context) {
	st, err := h.store.Stats(ctx)
	if err != nil {
		return
	}
	h.metrics.queueDepth.WithLabelValues(string(store.StateQueued)).Set(float64(st.Queued))
	h.metrics.queueDepth.WithLabelValues(string(store.StateLeased)).Set(float64(st.Leased))
}

func (h *Hub) collectGarbage(ctx context.Context) {
	now := h.opts.Now()
	tasks, err := h.store.DeleteFinishedTasks(ctx, now.Add(-h.opts.TaskRetention))
	if err != nil {
		h.opts.Logger.Warn("task retention failed", "error", err)
	}
	blobs, err := h.store.DeleteUnreferencedBlobs(ctx, now.Add(-h.opts.BlobGrace))
	if err != nil {
		h.opts.Logger.Warn("artifact collection failed", "error", err)
	}
	if tasks+blobs > 0 {
		h.opts.Logger.Info("garbage collected", "tasks", tasks, "artifacts", blobs)
	}
}

// environment returns an environment by id, cached (rows never change).
func (h *Hub) environment(ctx context.Context, id string) (store.Environment, error) {
	h.envMu.Lock()
	env, ok := h.envNames[id]
	h.envMu.Unlock()
	if ok {
		return env, nil
	}
	env, err := h.store.GetEnvironment(ctx, id)
	if err != nil {
		return store.Environment{}, err
	}
	h.envMu.Lock()
	h.envNames[id] = env
	h.envMu.Unlock()
	return env, nil
}
