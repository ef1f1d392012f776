package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outposthq/outpost/bench/internal/apicost"
	"github.com/outposthq/outpost/bench/internal/outpostproc"
	"github.com/outposthq/outpost/bench/internal/report"
	"github.com/outposthq/outpost/bench/internal/stats"
	"github.com/outposthq/outpost/internal/kube/kubetest"
	"github.com/outposthq/outpost/internal/tofutest"
)

// agentNamespace is the agent's own namespace: its identity lives there.
const agentNamespace = "outpost-system"

// statePrefix starts the name of every state Secret of the kubernetes
// backend: tfstate-<tofu workspace>-<secret_suffix>.
const statePrefix = "tfstate-default-"

// results is everything one invocation measured.
type results struct {
	serverVersion string
	tofuVersion   string
	module        *benchModule
	passes        []*pass
}

// pass is one side applying every module once.
type pass struct {
	agent       bool
	concurrency int // 1 for the CLI
	modules     int
	wall        time.Duration
	// latency is per module: the executor's CLI time (agent), or init and
	// apply together (CLI).
	latency stats.Sample
	// phases split latency by command: init, plan, apply (and output) for
	// the agent; init and apply for the CLI.
	phases map[string]stats.Sample
	// queued is per module from the hub's created_at to its finished_at
	// (agent only): latency plus the wait in the queue and the dispatch.
	queued stats.Sample
	// enqueue is how long enqueueing every task took (agent only).
	enqueue time.Duration
	// clientCPU is the agent process's CPU, or every tofu process's.
	clientCPU time.Duration
	// childCPU is the CPU of the tofu processes the agent ran (agent only).
	childCPU time.Duration
	hubCPU   time.Duration
	cost     apicost.Cost
	busy     float64 // machine CPU busy share over the pass
	load     string  // load average when the pass ended
	// samples are the memory readings while the pass ran (agent only).
	samples []treeSample
	// Agent process, KiB: VmRSS idle before its first task, VmHWM and
	// VmRSS when the last module is in.
	idle, peak, end int64
	// tofuRSS is each tofu process's peak RSS, KiB (CLI only).
	tofuRSS      []int64
	agentArgs    []string
	agentVersion string
	// throttled counts the agent's requests its own Kubernetes client held
	// for over a second (client-go's rate limiter logs each).
	throttled int
}

// bench is what every pass shares.
type bench struct {
	cfg        config
	env        *kubetest.Env
	hub        *outpostproc.Hub
	meter      *apicost.Meter
	modules    []*benchModule
	kubeconfig string
	cli        tofuCLI
	tmp        string
	agentBin   string
}

func run(ctx context.Context, cfg config, args []string) error {
	tmp, err := os.MkdirTemp("", "outpost-bench-terraform-")
	if err != nil {
		return err
	}
	if cfg.keep {
		fmt.Fprintf(os.Stderr, "keeping %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if cfg.tofu == "" {
		cfg.tofu = tofutest.Path()
	}
	if _, err := os.Stat(cfg.tofu); err != nil {
		return fmt.Errorf("%w (looked for %s)", errNoTofu, cfg.tofu)
	}
	if cfg.tofu, err = filepath.Abs(cfg.tofu); err != nil {
		return err
	}
	b := &bench{cfg: cfg, tmp: tmp, kubeconfig: filepath.Join(tmp, "kubeconfig")}
	b.cli = tofuCLI{bin: cfg.tofu, home: filepath.Join(tmp, "tofu-home")}
	if err := os.MkdirAll(b.cli.home, 0o700); err != nil {
		return err
	}
	res := &results{}
	if res.tofuVersion, err = b.cli.version(ctx); err != nil {
		return err
	}
	hubBin := filepath.Join(cfg.binDir, "outpost-hub")
	b.agentBin = filepath.Join(cfg.binDir, "outpost-agent")
	for _, bin := range []string{hubBin, b.agentBin} {
		if _, err := os.Stat(bin); err != nil && cfg.agent {
			return fmt.Errorf("%s is not built: run make build", bin)
		}
	}
	// Module -1 is the warm-up; 0 … modules-1 are measured.
	for i := -1; i < cfg.modules; i++ {
		m, err := newModule(i+1, cfg.resources, cfg.latency)
		if err != nil {
			return err
		}
		b.modules = append(b.modules, m)
	}
	res.module = b.modules[1]

	fmt.Fprintln(os.Stderr, "starting kube-apiserver and etcd …")
	if b.env, err = kubetest.Start(); err != nil {
		return err
	}
	defer func() {
		if err := b.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "warning:", err)
		}
	}()
	if v, err := b.env.Client.Discovery().ServerVersion(); err == nil {
		res.serverVersion = v.GitVersion
	}
	for _, ns := range []string{agentNamespace, cfg.agentNamespace, cfg.cliNamespace} {
		if err := b.env.CreateNamespace(ctx, ns); err != nil {
			return err
		}
	}
	if err := kubetest.WriteKubeconfig(b.kubeconfig, b.env.Config); err != nil {
		return err
	}
	b.meter = apicost.NewMeter(b.env)
	if cfg.agent {
		hubDir := filepath.Join(tmp, "hub")
		if err := os.MkdirAll(hubDir, 0o700); err != nil {
			return err
		}
		if b.hub, err = outpostproc.StartHub(ctx, outpostproc.HubOptions{Bin: hubBin, Dir: hubDir}); err != nil {
			return err
		}
		defer func() { _ = b.hub.Stop() }()
		p, err := b.agentPass(ctx)
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		res.passes = append(res.passes, p)
	}
	if cfg.cli {
		p, err := b.cliPass(ctx)
		if err != nil {
			return fmt.Errorf("tofu CLI: %w", err)
		}
		res.passes = append(res.passes, p)
	}

	tables := render(cfg, res)
	return report.Publish(cfg.results, tables, func() error { return appendResults(ctx, cfg, args, tables) })
}

// measured returns the modules a pass measures, without the warm-up.
func (b *bench) measured() []*benchModule { return b.modules[1:] }

// warmup returns the module each side applies before measuring.
func (b *bench) warmup() *benchModule { return b.modules[0] }

// cleanState checks that namespace holds the state of exactly the
// workspaces given, then deletes every Secret and Lease in it (state, lock
// and fence), so the next pass meets an API server of the same size.
func (b *bench) cleanState(ctx context.Context, namespace string, workspaces ...string) error {
	c := b.env.Client
	secrets, err := c.CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("clean state in %s: %w", namespace, err)
	}
	found := map[string]bool{}
	for _, s := range secrets.Items {
		if ws, ok := strings.CutPrefix(s.Name, statePrefix); ok {
			found[ws] = true
		}
	}
	var missing []string
	for _, ws := range workspaces {
		if !found[ws] {
			missing = append(missing, ws)
		}
	}
	if len(missing) > 0 || len(found) != len(workspaces) {
		return fmt.Errorf("namespace %s holds state of %d workspaces, want %d; missing: %s", namespace, len(found), len(workspaces), strings.Join(missing, ", "))
	}
	del, all := metav1.DeleteOptions{}, metav1.ListOptions{}
	if err := errors.Join(
		c.CoreV1().Secrets(namespace).DeleteCollection(ctx, del, all),
		c.CoordinationV1().Leases(namespace).DeleteCollection(ctx, del, all),
	); err != nil {
		return fmt.Errorf("clean state in %s: %w", namespace, err)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
