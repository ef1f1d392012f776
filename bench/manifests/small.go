package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/outposthq/outpost/bench/internal/procstat"
	"github.com/outposthq/outpost/bench/internal/stats"

	"golang.org/x/sync/errgroup"

	"github.com/outposthq/outpost/internal/agent"
	"github.com/outposthq/outpost/internal/kube/kubetest"
)

// runSmall is phase 2: many small bundles, each its own release, through
// the executor one after another and then on a pool the size of the
// agent's, in separate namespaces so both passes create every object.
func runSmall(ctx context.Context, cfg config, env *kubetest.Env, ag *agentApplier) (*smallResult, error) {
	r := &smallResult{bundles: cfg.smallBundles, objects: cfg.smallObjects, parallel: cfg.parallel}
	if r.parallel == 0 {
		r.parallel = agent.DefaultConcurrency
	}
	if err := newNamespace(ctx, env, "bench-small-warmup"); err != nil {
		return nil, err
	}
	if _, err := ag.apply(ctx, "small-warmup", generate("bench-small-warmup", "w", cfg.smallObjects, 7)); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	if err := clean(ctx, env, "bench-small-warmup"); err != nil {
		return nil, err
	}
	meter := procstat.StartBusy()
	for _, pass := range []struct {
		ns    string
		limit int
		dst   *time.Duration
	}{
		{"bench-small-sequential", 1, &r.sequential},
		{"bench-small-parallel", r.parallel, &r.concurrent},
	} {
		if err := newNamespace(ctx, env, pass.ns); err != nil {
			return nil, err
		}
		bundles := make([]*bundle, cfg.smallBundles)
		for i := range bundles {
			bundles[i] = generate(pass.ns, fmt.Sprintf("s%03d", i), cfg.smallObjects, uint64(i))
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(pass.limit)
		t0 := time.Now()
		for i, b := range bundles {
			g.Go(func() error {
				_, err := ag.apply(gctx, fmt.Sprintf("small-%03d", i), b)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return nil, fmt.Errorf("%d at a time: %w", pass.limit, err)
		}
		*pass.dst = time.Since(t0)
		if err := clean(ctx, env, pass.ns); err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "%d bundles × %d objects, %d at a time: %s (load %s)\n", cfg.smallBundles, cfg.smallObjects, pass.limit, stats.Secs(*pass.dst), procstat.LoadAverage())
	}
	r.busy = meter.Share()
	return r, nil
}
