package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/outposthq/outpost/bench/internal/procstat"
	"github.com/outposthq/outpost/bench/internal/stats"
)

// cliPass applies every module with the CLI, one after another: `tofu init
// && tofu apply -auto-approve` in each module's directory.
func (b *bench) cliPass(ctx context.Context) (*pass, error) {
	dirs := map[*benchModule]string{}
	for _, m := range b.modules {
		dir := filepath.Join(b.tmp, "cli", m.Workspace)
		override, err := backendOverride(b.cfg.cliNamespace, m.Workspace, b.kubeconfig)
		if err != nil {
			return nil, err
		}
		if err := m.writeDir(dir, map[string][]byte{"zzz_bench_backend_override.tf.json": override}); err != nil {
			return nil, err
		}
		dirs[m] = dir
	}
	// The first run brings tofu into the page cache.
	warm := b.warmup()
	if _, err := b.cli.initApply(ctx, dirs[warm]); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	modules := b.measured()
	p := &pass{concurrency: 1, phases: map[string]stats.Sample{}}
	before, err := b.meter.Read(ctx)
	if err != nil {
		return nil, err
	}
	hub0 := b.hubCPU()
	busy := procstat.StartBusy()
	fmt.Fprintf(os.Stderr, "tofu CLI: applying %d modules one after another …\n", len(modules))
	t0 := time.Now()
	workspaces := []string{warm.Workspace}
	for _, m := range modules {
		r, err := b.cli.initApply(ctx, dirs[m])
		if err != nil {
			return nil, err
		}
		p.modules++
		p.latency = append(p.latency, r.init+r.apply)
		p.phases["init"] = append(p.phases["init"], r.init)
		p.phases["apply"] = append(p.phases["apply"], r.apply)
		p.clientCPU += r.cpu
		p.tofuRSS = append(p.tofuRSS, r.maxRSS)
		workspaces = append(workspaces, m.Workspace)
	}
	p.wall = time.Since(t0)
	p.busy, p.load = busy.Share(), procstat.LoadAverage()
	p.hubCPU = b.hubCPU() - hub0
	if p.cost, err = b.meter.Since(ctx, before); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "tofu CLI: %d modules in %s (p50 %s per module; load %s)\n",
		p.modules, stats.Secs(p.wall), stats.Secs(p.latency.Median()), p.load)
	return p, b.cleanState(ctx, b.cfg.cliNamespace, workspaces...)
}

// hubCPU returns the hub's CPU time so far; 0 without a hub (-agent=false).
func (b *bench) hubCPU() time.Duration {
	if b.hub == nil {
		return 0
	}
	d, _ := procstat.CPUTime(b.hub.PID())
	return d
}
