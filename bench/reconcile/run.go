package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/outposthq/outpost/bench/internal/outpostproc"
	"github.com/outposthq/outpost/bench/internal/procstat"
	"github.com/outposthq/outpost/bench/internal/report"
	"github.com/outposthq/outpost/bench/internal/stats"
	"github.com/outposthq/outpost/internal/kube"
	"github.com/outposthq/outpost/internal/kube/kubetest"
)

const (
	environment = "prod"
	// agentUser names the agent's least-privilege identity.
	agentUser = "outpost-agent"
	// applyTimeout bounds the agent's work on the releases applied.
	applyTimeout = 30 * time.Minute
	// syncTimeout bounds the restarted agent's first full sync.
	syncTimeout = 15 * time.Minute
	// settle lets the restarted agent send its reports before the edits.
	settle = 10 * time.Second
	// reportWait bounds the wait for the edits' correction reports.
	reportWait = 30 * time.Second
)

// results is everything one invocation measured.
type results struct {
	serverVersion string
	agentVersion  string
	agentArgs     []string
	namespaces    []string
	// applyCalls, applied and reconciled are from the first ApplyRelease
	// call to: every call returned, ListReleases showing every release
	// applied, the agent's log showing every release synced.
	applyCalls, applied, reconciled time.Duration
	// restartAt is when the agent was started again; marks are its log's
	// times up to its first full sync.
	restartAt time.Time
	marks     syncMarks
	// syncCPU is the agent's CPU time from its start to the first full
	// sync; syncRSS its memory then.
	syncCPU time.Duration
	syncRSS procstat.Memory
	// restartDrift is the drift audit events the restart and first sync
	// added: false drift unless 0.
	restartDrift driftCounts
	edits        editResults
	// editDrift is the drift audit events the edits caused.
	editDrift driftCounts
	idle      idleResults
}

func run(ctx context.Context, cfg config, args []string) error {
	hubBin, agentBin := filepath.Join(cfg.binDir, "outpost-hub"), filepath.Join(cfg.binDir, "outpost-agent")
	for _, b := range []string{hubBin, agentBin} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%s is not built: run make build (or pass -bin-dir)", b)
		}
	}
	tmp, err := os.MkdirTemp("", "outpost-bench-reconcile-")
	if err != nil {
		return err
	}
	if cfg.keep {
		fmt.Fprintf(os.Stderr, "keeping %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	fmt.Fprintln(os.Stderr, "starting kube-apiserver and etcd …")
	env, err := kubetest.Start()
	if err != nil {
		return err
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "warning:", err)
		}
	}()
	res := &results{}
	if v, err := env.Client.Discovery().ServerVersion(); err == nil {
		res.serverVersion = v.GitVersion
	}
	for i := range cfg.namespaces {
		res.namespaces = append(res.namespaces, fmt.Sprintf("apps-%d", i))
	}
	for _, ns := range append([]string{kube.DefaultNamespace}, res.namespaces...) {
		if err := env.CreateNamespace(ctx, ns); err != nil {
			return err
		}
	}
	agentCfg, err := env.AddAgent(ctx, kubetest.Agent{Name: agentUser, Namespace: kube.DefaultNamespace, Targets: res.namespaces})
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(tmp, "kubeconfig")
	if err := kubetest.WriteKubeconfig(kubeconfig, agentCfg); err != nil {
		return err
	}

	fmt.Fprintln(os.Stderr, "starting outpost-hub and outpost-agent …")
	hub, err := outpostproc.StartHub(ctx, outpostproc.HubOptions{Bin: hubBin, Dir: tmp})
	if err != nil {
		return err
	}
	defer func() { _ = hub.Stop() }()
	// The reconciler logs "release synced" at debug level.
	extra := []string{"--log-level", "debug"}
	if cfg.resync > 0 {
		extra = append(extra, "--resync", cfg.resync.String())
	}
	if cfg.kubeQPS > 0 {
		extra = append(extra, "--kube-qps", strconv.Itoa(cfg.kubeQPS), "--kube-burst", strconv.Itoa(2*cfg.kubeQPS))
	}
	agent, err := outpostproc.StartAgent(ctx, outpostproc.AgentOptions{Bin: agentBin, Dir: tmp, Hub: hub, Environment: environment, Kubeconfig: kubeconfig, Args: extra})
	if err != nil {
		return err
	}
	stopFirst := sync.OnceFunc(func() { _ = agent.Stop() })
	defer stopFirst()
	res.agentVersion = agent.Version
	res.agentArgs = outpostproc.RedactArgs(agent.Args)

	// 1. Apply.
	rels := releases(cfg.releases, res.namespaces)
	fmt.Fprintf(os.Stderr, "applying %d releases (%d objects) …\n", len(rels), 3*len(rels))
	tail := &logTail{path: agent.LogPath}
	start := time.Now()
	if err := applyAll(ctx, hub, rels, cfg.applyConcurrency); err != nil {
		return err
	}
	res.applyCalls = time.Since(start)
	if err := waitApplied(ctx, hub, agent.Child, len(rels), applyTimeout); err != nil {
		return err
	}
	res.applied = time.Since(start)
	m, err := waitFirstSync(ctx, agent.Child, tail, len(rels), applyTimeout)
	if err != nil {
		return fmt.Errorf("after the apply: %w", err)
	}
	res.reconciled = m.allSynced.Sub(start)
	fmt.Fprintf(os.Stderr, "applied in %s, reconciler synced in %s\n", stats.Secs(res.applied), stats.Secs(res.reconciled))

	// 2. First full sync after a restart.
	time.Sleep(settle) // the reports of the first syncs
	before, err := countDrift(ctx, hub)
	if err != nil {
		return err
	}
	stopFirst()
	restartArgs := withoutBootstrap(agent.Args)
	fmt.Fprintln(os.Stderr, "restarting the agent …")
	res.restartAt = time.Now()
	again, err := outpostproc.Start(agentBin, filepath.Join(tmp, "agent-restarted.log"), nil, restartArgs...)
	if err != nil {
		return err
	}
	again.Name = "outpost-agent"
	defer func() { _ = again.Stop() }()
	tail = &logTail{path: again.LogPath}
	if res.marks, err = waitFirstSync(ctx, again, tail, len(rels), syncTimeout); err != nil {
		return fmt.Errorf("after the restart: %w", err)
	}
	if c, err := procstat.CPUTime(again.PID()); err == nil {
		res.syncCPU = c
	}
	res.syncRSS, _ = procstat.ReadMemory(again.PID())
	fmt.Fprintf(os.Stderr, "first full sync in %s\n", stats.Secs(res.marks.allSynced.Sub(res.restartAt)))
	time.Sleep(settle)
	after, err := countDrift(ctx, hub)
	if err != nil {
		return err
	}
	res.restartDrift = after.minus(before)

	// 3. Edits.
	fmt.Fprintf(os.Stderr, "%d edits …\n", cfg.edits)
	before = after
	if res.edits, err = runEdits(ctx, env.Client, rels, cfg); err != nil {
		return err
	}
	deadline := time.Now().Add(reportWait)
	for {
		after, err = countDrift(ctx, hub)
		if err != nil {
			return err
		}
		if after.corrected-before.corrected >= cfg.edits || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	res.editDrift = after.minus(before)
	fmt.Fprintf(os.Stderr, "corrections: p50 %s p99 %s, %d misses\n", stats.Secs(res.edits.all.Median()), stats.Secs(res.edits.all.Quantile(0.99)), len(res.edits.misses))

	// 4. Idle.
	fmt.Fprintf(os.Stderr, "idle for %s …\n", cfg.idle)
	if res.idle, err = runIdle(ctx, hub, again, tail, cfg.idle); err != nil {
		return err
	}

	tables := render(cfg, res)
	return report.Publish(cfg.results, tables, func() error { return appendResults(ctx, cfg, args, tables) })
}

// withoutBootstrap drops the bootstrap token from an agent's command
// line: started again, it uses the identity it enrolled.
func withoutBootstrap(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == "--bootstrap-token-file" {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}
