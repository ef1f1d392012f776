package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outposthq/outpost/bench/internal/apicost"
	"github.com/outposthq/outpost/bench/internal/latency"
	"github.com/outposthq/outpost/bench/internal/outpostproc"
	"github.com/outposthq/outpost/bench/internal/procstat"
	"github.com/outposthq/outpost/bench/internal/report"
	"github.com/outposthq/outpost/bench/internal/stats"
	"github.com/outposthq/outpost/internal/kube/kubetest"
)

// agentNamespace is the agent's own namespace: its identity lives there.
const agentNamespace = "outpost-system"

// results is everything one invocation measured.
type results struct {
	serverVersion string
	helmVersion   string
	chart         *benchChart
	passes        []*pass
	// notes are remarks printed under the tables.
	notes []string
}

// pass is one side installing every release once.
type pass struct {
	agent       bool
	concurrency int // 1 for the CLI
	releases    int
	wall        time.Duration
	// latency is per release: the helm process's wall time, or the
	// executor's own duration in the agent.
	latency stats.Sample
	// render and apply split the executor's duration at its "helm release
	// validated" record: fetch, verify, render and validate before it,
	// the install itself after (agent only).
	render, apply stats.Sample
	// queued is per release from the hub's created_at to its finished_at
	// (agent only): latency plus the wait in the queue.
	queued stats.Sample
	// enqueue is how long enqueueing every task took (agent only).
	enqueue time.Duration
	// clientCPU is the CPU of every helm process, or of the agent process.
	clientCPU time.Duration
	hubCPU    time.Duration
	cost      apicost.Cost
	busy      float64 // machine CPU busy share over the pass
	load      string  // load average when the pass ended
	// Agent process memory, KiB: VmRSS idle before its first task, VmHWM
	// and VmRSS when the last release is in.
	idle, peak, end int64
	agentArgs       []string
	agentVersion    string
	profile         string
	// cliArgs are the CLI's extra flags (-cli-args).
	cliArgs []string
}

// rate returns releases per second.
func (p *pass) rate() float64 {
	if p.wall <= 0 {
		return 0
	}
	return float64(p.releases) / p.wall.Seconds()
}

// bench is what every pass shares.
type bench struct {
	cfg        config
	env        *kubetest.Env
	hub        *outpostproc.Hub
	meter      *apicost.Meter
	chart      *benchChart
	chartDir   string
	kubeconfig string
	cli        helmCLI
	tmp        string
	agentBin   string
	agentEnv   []string
}

func run(ctx context.Context, cfg config, args []string) error {
	tmp, err := os.MkdirTemp("", "outpost-bench-helm-")
	if err != nil {
		return err
	}
	if cfg.keep {
		fmt.Fprintf(os.Stderr, "keeping %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	b := &bench{cfg: cfg, tmp: tmp, kubeconfig: filepath.Join(tmp, "kubeconfig")}
	if cfg.helm == "" {
		cfg.helm = defaultHelmPath()
	}
	if _, err := os.Stat(cfg.helm); err != nil && cfg.cli {
		return fmt.Errorf("%w (looked for %s)", errNoHelm, cfg.helm)
	}
	hubBin := filepath.Join(cfg.binDir, "outpost-hub")
	b.agentBin = filepath.Join(cfg.binDir, "outpost-agent")
	if cfg.cpuprofile != "" {
		// This program in agent mode, so the agent can profile itself.
		if b.agentBin, err = os.Executable(); err != nil {
			return err
		}
		b.agentEnv = []string{envAgentMode + "=1"}
	}
	for _, bin := range []string{hubBin, b.agentBin} {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("%s is not built: run make build", bin)
		}
	}
	if b.chart, err = newChart(); err != nil {
		return err
	}
	b.chartDir = filepath.Join(tmp, "chart", chartName)
	if err := b.chart.writeDir(b.chartDir); err != nil {
		return err
	}
	b.cli = helmCLI{bin: cfg.helm, kubeconfig: b.kubeconfig, home: filepath.Join(tmp, "helm-home"), args: cfg.cliArgs}
	if err := os.MkdirAll(b.cli.home, 0o700); err != nil {
		return err
	}
	res := &results{chart: b.chart}
	if cfg.cli {
		if res.helmVersion, err = b.cli.version(ctx); err != nil {
			return err
		}
	}

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
	if err := b.env.CreateNamespace(ctx, agentNamespace); err != nil {
		return err
	}
	// The contenders' view of the cluster: direct, or through a proxy that
	// adds a round trip. Both the CLI and the agents use b.kubeconfig.
	clientCfg := b.env.Config
	if cfg.rtt > 0 {
		proxy, c, err := latency.StartFor(b.env.Config, cfg.rtt)
		if err != nil {
			return err
		}
		defer func() { _ = proxy.Close() }()
		clientCfg = c
	}
	if err := kubetest.WriteKubeconfig(b.kubeconfig, clientCfg); err != nil {
		return err
	}
	hubDir := filepath.Join(tmp, "hub")
	if err := os.MkdirAll(hubDir, 0o700); err != nil {
		return err
	}
	if b.hub, err = outpostproc.StartHub(ctx, outpostproc.HubOptions{Bin: hubBin, Dir: hubDir}); err != nil {
		return err
	}
	defer func() { _ = b.hub.Stop() }()
	b.meter = apicost.NewMeter(b.env)

	for i, c := range cfg.concurrency {
		p, err := b.agentPass(ctx, c)
		if err != nil {
			return fmt.Errorf("agent, --concurrency %d: %w", c, err)
		}
		res.passes = append(res.passes, p)
		if i == 0 && cfg.cli {
			p, err := b.cliPass(ctx)
			if err != nil {
				return fmt.Errorf("helm CLI: %w", err)
			}
			res.passes = append(res.passes, p)
		}
	}

	tables := render(cfg, res)
	return report.Publish(cfg.results, tables, func() error { return appendResults(ctx, cfg, args, tables) })
}

// layout names the releases of a pass and their namespaces.
type layout struct {
	prefix       string
	releases     int
	perNamespace int
}

func (l layout) release(i int) string { return fmt.Sprintf("app-%03d", i) }

func (l layout) namespace(i int) string {
	return fmt.Sprintf("bench-%s-%02d", l.prefix, i/l.perNamespace)
}

func (l layout) namespaces() []string {
	var out []string
	for i := 0; i < l.releases; i += l.perNamespace {
		out = append(out, l.namespace(i))
	}
	return out
}

func (b *bench) layout(prefix string) layout {
	return layout{prefix: prefix, releases: b.cfg.releases, perNamespace: b.cfg.perNamespace}
}

// createNamespaces creates fresh namespaces.
func (b *bench) createNamespaces(ctx context.Context, names ...string) error {
	for _, ns := range names {
		_, err := b.env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create namespace %s: %w", ns, err)
		}
	}
	return nil
}

// clean deletes what a pass installed into namespaces. Without a
// namespace controller a deleted namespace keeps its objects; deleting
// them keeps the API server's state the same size for every pass.
func (b *bench) clean(ctx context.Context, namespaces ...string) error {
	all := metav1.ListOptions{}
	del := metav1.DeleteOptions{}
	c := b.env.Client
	var errs []error
	for _, ns := range namespaces {
		// Services have no DeleteCollection.
		svcs, err := c.CoreV1().Services(ns).List(ctx, all)
		if err != nil {
			return fmt.Errorf("clean namespace %s: %w", ns, err)
		}
		for _, s := range svcs.Items {
			errs = append(errs, c.CoreV1().Services(ns).Delete(ctx, s.Name, del))
		}
		errs = append(errs,
			c.CoreV1().ConfigMaps(ns).DeleteCollection(ctx, del, all),
			c.CoreV1().Secrets(ns).DeleteCollection(ctx, del, all),
			c.CoreV1().ServiceAccounts(ns).DeleteCollection(ctx, del, all),
			c.AppsV1().Deployments(ns).DeleteCollection(ctx, del, all),
			c.RbacV1().Roles(ns).DeleteCollection(ctx, del, all),
		)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean: %w", err)
	}
	return nil
}

// cliPass installs every release with the helm CLI, one after another.
func (b *bench) cliPass(ctx context.Context) (*pass, error) {
	warm := "bench-warmup-cli"
	if err := b.createNamespaces(ctx, warm); err != nil {
		return nil, err
	}
	// The first run fills helm's discovery cache and the page cache.
	if _, _, err := b.cli.install(ctx, "warmup", b.chartDir, warm); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	l := b.layout("cli")
	if err := b.createNamespaces(ctx, l.namespaces()...); err != nil {
		return nil, err
	}
	p := &pass{concurrency: 1, releases: l.releases, cliArgs: b.cli.args}
	before, err := b.meter.Read(ctx)
	if err != nil {
		return nil, err
	}
	hub0, _ := procstat.CPUTime(b.hub.PID())
	busy := procstat.StartBusy()
	fmt.Fprintf(os.Stderr, "helm CLI: installing %d releases one after another …\n", l.releases)
	t0 := time.Now()
	for i := range l.releases {
		wall, cpu, err := b.cli.install(ctx, l.release(i), b.chartDir, l.namespace(i))
		if err != nil {
			return nil, err
		}
		p.latency = append(p.latency, wall)
		p.clientCPU += cpu
	}
	p.wall = time.Since(t0)
	p.busy, p.load = busy.Share(), procstat.LoadAverage()
	hub1, _ := procstat.CPUTime(b.hub.PID())
	p.hubCPU = hub1 - hub0
	if p.cost, err = b.meter.Since(ctx, before); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "helm CLI: %d releases in %s = %.2f/s (p50 %s per release; load %s)\n",
		p.releases, stats.Secs(p.wall), p.rate(), stats.Secs(p.latency.Median()), p.load)
	return p, b.clean(ctx, append(l.namespaces(), warm)...)
}
