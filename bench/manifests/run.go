package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/outposthq/outpost/bench/internal/apicost"
	"github.com/outposthq/outpost/bench/internal/latency"
	"github.com/outposthq/outpost/bench/internal/procstat"
	"github.com/outposthq/outpost/bench/internal/report"
	"github.com/outposthq/outpost/bench/internal/stats"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outposthq/outpost/internal/kube/kubetest"
)

// agentNamespace is the agent's own namespace: inventories live there.
const agentNamespace = "outpost-system"

// results is everything one invocation measured.
type results struct {
	serverVersion  string
	kubectlVersion string
	apply          *applyResult
	small          *smallResult
	rss            *rssResult
	// notes are remarks printed under the tables (failures of a phase,
	// fallbacks).
	notes []string
}

// applyResult is phase 1: the large bundle, both tools.
type applyResult struct {
	objects, bytes, files int
	// kubectl and agent hold the fresh ([0]) and no-op ([1]) applies.
	kubectl, agent [2]measured
	busy           float64 // machine CPU busy share over the phase
	load           string  // load average when the phase ended
	outcome        string  // the executor's last per-object outcome counts
}

// measured is one tool's applies of one kind (fresh or no-op) over the
// runs.
type measured struct {
	wall     stats.Sample
	client   stats.Sample // CPU of kubectl's process, or of this process around Execute
	server   stats.Sample // CPU of kube-apiserver
	etcd     stats.Sample // CPU of etcd
	validate stats.Sample // the executor's validation, from its log (agent only)
	last     apicost.Cost // the requests of the last run (the same every run)
}

func (m *measured) add(wall, client time.Duration, c apicost.Cost) {
	m.wall = append(m.wall, wall)
	m.client = append(m.client, client)
	m.server = append(m.server, c.Server)
	m.etcd = append(m.etcd, c.Etcd)
	m.last = c
}

// smallResult is phase 2: many small bundles.
type smallResult struct {
	bundles, objects, parallel int
	sequential, concurrent     time.Duration
	busy                       float64
}

func run(ctx context.Context, cfg config, args []string) error {
	tmp, err := os.MkdirTemp("", "outpost-bench-manifests-")
	if err != nil {
		return err
	}
	if cfg.keep {
		fmt.Fprintf(os.Stderr, "keeping %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	assets, err := kubetest.AssetsDir()
	if err != nil {
		return err
	}
	if cfg.kubectl == "" {
		cfg.kubectl = kubectlPath(assets)
	}
	if cfg.phases["apply"] {
		if _, err := os.Stat(cfg.kubectl); err != nil {
			return fmt.Errorf("%w (looked for %s)", errNoKubectl, cfg.kubectl)
		}
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
	if err := env.CreateNamespace(ctx, agentNamespace); err != nil {
		return err
	}
	// The contenders' view of the cluster: direct, or through a proxy that
	// adds a round trip.
	clientCfg := env.Config
	if cfg.rtt > 0 {
		proxy, c, err := latency.StartFor(env.Config, cfg.rtt)
		if err != nil {
			return err
		}
		defer func() { _ = proxy.Close() }()
		clientCfg = c
	}
	kubeconfig := filepath.Join(tmp, "kubeconfig")
	if err := kubetest.WriteKubeconfig(kubeconfig, clientCfg); err != nil {
		return err
	}
	ag, err := newAgentApplier(clientCfg)
	if err != nil {
		return err
	}

	if cfg.phases["apply"] {
		kv, err := checkKubectl(ctx, cfg.kubectl, res.serverVersion)
		if err != nil {
			return err
		}
		res.kubectlVersion = kv
		k := kubectl{bin: cfg.kubectl, kubeconfig: kubeconfig, cacheDir: filepath.Join(tmp, "kube-cache")}
		if res.apply, err = runApply(ctx, cfg, env, k, ag, tmp); err != nil {
			return fmt.Errorf("large bundle: %w", err)
		}
	}
	if cfg.phases["small"] {
		if res.small, err = runSmall(ctx, cfg, env, ag); err != nil {
			return fmt.Errorf("small bundles: %w", err)
		}
	}
	if cfg.phases["rss"] {
		r, err := runRSS(ctx, cfg, env, kubeconfig, tmp)
		if err != nil {
			// The other phases still count; say plainly what failed.
			res.notes = append(res.notes, fmt.Sprintf("agent RSS not measured: %v", err))
			fmt.Fprintln(os.Stderr, "agent RSS:", err)
		}
		res.rss = r
	}

	tables := render(cfg, res)
	return report.Publish(cfg.results, tables, func() error { return appendResults(ctx, cfg, args, tables) })
}

// newNamespace creates a namespace for one apply.
func newNamespace(ctx context.Context, env *kubetest.Env, name string) error {
	_, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// runApply is phase 1.
func runApply(ctx context.Context, cfg config, env *kubetest.Env, k kubectl, ag *agentApplier, tmp string) (*applyResult, error) {
	r := &applyResult{}
	// Warm both paths (kubectl's discovery cache, the executor's clients,
	// the API server's caches) with a small bundle before measuring.
	for _, tool := range []string{"kubectl", "agent"} {
		ns := "bench-warmup-" + tool
		if err := newNamespace(ctx, env, ns); err != nil {
			return nil, err
		}
		b := generate(ns, "warm", 24, 1)
		if err := applyOnce(ctx, tool, k, ag, b, filepath.Join(tmp, ns), "warmup-"+tool); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
		if err := clean(ctx, env, ns); err != nil {
			return nil, err
		}
	}
	if cfg.cpuprofile != "" {
		// Over the whole phase: kubectl runs in its own process, so the
		// samples are the executor's (and the bundle generator's) work.
		f, err := os.Create(cfg.cpuprofile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	costs := apicost.NewMeter(env)
	meter := procstat.StartBusy()
	for i := range cfg.runs {
		order := []string{"kubectl", "agent"}
		if i%2 == 1 {
			order = []string{"agent", "kubectl"}
		}
		for _, tool := range order {
			ns := fmt.Sprintf("bench-%s-%d", tool, i)
			if err := newNamespace(ctx, env, ns); err != nil {
				return nil, err
			}
			b := generate(ns, "app", cfg.objects, 42)
			r.objects, r.bytes, r.files = b.objects, b.bytes, len(b.files)
			dst := &r.kubectl
			if tool == "agent" {
				dst = &r.agent
			}
			for pass := range dst {
				before, err := costs.Read(ctx)
				if err != nil {
					return nil, err
				}
				var wall, client time.Duration
				if tool == "agent" {
					self0, _ := procstat.CPUTime(os.Getpid())
					// One release per run: reusing one across namespaces
					// would prune the previous run's objects.
					wall, err = ag.apply(ctx, fmt.Sprintf("bench-%d", i), b)
					self1, _ := procstat.CPUTime(os.Getpid())
					client = self1 - self0
					dst[pass].validate = append(dst[pass].validate, ag.phases.lastValidated())
				} else {
					wall, client, err = k.applyBundle(ctx, b, filepath.Join(tmp, ns))
				}
				if err != nil {
					return nil, fmt.Errorf("run %d, %s, pass %d: %w", i+1, tool, pass+1, err)
				}
				c, err := costs.Since(ctx, before)
				if err != nil {
					return nil, err
				}
				dst[pass].add(wall, client, c)
			}
			if tool == "agent" {
				r.outcome = ag.lastOutcome
			}
			if err := clean(ctx, env, ns); err != nil {
				return nil, err
			}
			fmt.Fprintf(os.Stderr, "run %d/%d %-7s fresh %-8s no-op %-8s (load %s)\n", i+1, cfg.runs, tool,
				stats.Secs(dst[0].wall[i]), stats.Secs(dst[1].wall[i]), procstat.LoadAverage())
		}
	}
	r.busy = meter.Share()
	r.load = procstat.LoadAverage()
	return r, nil
}

// applyOnce applies b with one tool, untimed.
func applyOnce(ctx context.Context, tool string, k kubectl, ag *agentApplier, b *bundle, dir, release string) error {
	if tool == "agent" {
		_, err := ag.apply(ctx, release, b)
		return err
	}
	_, _, err := k.applyBundle(ctx, b, dir)
	return err
}

// applyBundle writes b into dir (once) and applies it with kubectl.
func (k kubectl) applyBundle(ctx context.Context, b *bundle, dir string) (wall, cpu time.Duration, err error) {
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return 0, 0, err
		}
		if err := b.writeDir(dir); err != nil {
			return 0, 0, err
		}
	}
	return k.apply(ctx, dir, b.objects)
}

// clean deletes what the bundles put into ns. Without a namespace
// controller a deleted namespace keeps its objects, and the test cluster's
// Service range (10.0.0.0/24) holds only 256 cluster IPs, so every run
// frees its Services; deleting the rest keeps the API server's state the
// same size for every run.
func clean(ctx context.Context, env *kubetest.Env, ns string) error {
	all := metav1.ListOptions{}
	del := metav1.DeleteOptions{}
	c := env.Client
	// Services have no DeleteCollection.
	svcs, err := c.CoreV1().Services(ns).List(ctx, all)
	if err != nil {
		return fmt.Errorf("clean namespace %s: %w", ns, err)
	}
	var errs []error
	for _, s := range svcs.Items {
		errs = append(errs, c.CoreV1().Services(ns).Delete(ctx, s.Name, del))
	}
	errs = append(errs,
		c.CoreV1().ConfigMaps(ns).DeleteCollection(ctx, del, all),
		c.CoreV1().ServiceAccounts(ns).DeleteCollection(ctx, del, all),
		c.AppsV1().Deployments(ns).DeleteCollection(ctx, del, all),
		c.RbacV1().Roles(ns).DeleteCollection(ctx, del, all),
		c.RbacV1().RoleBindings(ns).DeleteCollection(ctx, del, all),
	)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean namespace %s: %w", ns, err)
	}
	return nil
}
