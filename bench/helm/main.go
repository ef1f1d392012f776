// Command helm benchmarks the agent's helm task kind against the helm CLI:
// how many releases of one chart each installs per second, and how much
// memory the agent holds while it does.
//
// # What runs
//
// A real kube-apiserver and etcd (internal/kube/kubetest, built from source
// by hack/testbins.sh) on 127.0.0.1, used as cluster administrator by both
// contenders through the same kubeconfig; a real outpost-hub process on a
// fresh SQLite file, and one real outpost-agent process per -concurrency
// (bin/, from make build) started with --kubeconfig and --concurrency.
// Everything is loopback, and the program stops by itself.
//
// The chart is generated (chart.go): 20 templates, 8 ConfigMaps, 4
// Secrets, 3 headless Services, 3 Deployments with a realistic pod
// template, a ServiceAccount and a Role, written with the usual helpers,
// labels and checksum annotations, no hooks. The agent gets it packed
// inline in each task (chart.archive); the CLI gets it as a directory.
// Releases app-000 … are spread over namespaces of -per-namespace
// releases each, fresh for every pass; both sides use the same layout.
//
// # What is measured
//
//   - agent: -releases helm install tasks (action install, MaxAttempts 1),
//     enqueued through the operator API by 8 callers at once as fast as
//     the hub takes them; the agent runs up to --concurrency at a time.
//     Throughput = releases ÷ (first EnqueueTask call → the last task's
//     finished_at as the hub recorded it). Per release: the executor's
//     own duration (its "helm task done" record), split into render and
//     validate (up to "helm release validated") and apply; and enqueue →
//     finished, which includes the wait in the queue.
//   - CLI: `helm install <name> <chart dir> -n <namespace>` (plus
//     -cli-args, none by default) one after another, as a user's script
//     would, with helm v4.3.1 built from the module proxy
//     (hack/helmcli.sh), a fresh process per release with a warm discovery
//     cache in its own HOME. Throughput = releases ÷ (first start → last
//     exit); per release: the process's wall time. Helm 4 installs with
//     server-side apply by default, as the agent does; unlike the agent it
//     also validates against the OpenAPI schema on the client by default
//     (-cli-args --disable-openapi-validation turns that off).
//   - agent memory: VmRSS once it holds its Watch stream and has idled
//     -settle (idle), and VmHWM (peak) when the last release is in.
//   - cost: CPU of the agent process (or the helm processes), of the hub,
//     of kube-apiserver and etcd, and the API requests by verb and
//     resource (kube-apiserver's own counters), per release.
//
// Each side warms up first with one release (not measured). Between
// passes the benchmark deletes what the last one installed, so every pass
// meets an API server of the same size. The order is agent (first
// -concurrency), CLI, then the agent at the other concurrencies.
//
// Usage:
//
//	make bench-helm
//	go run ./bench/helm -concurrency 8,16 -releases 200
//	go run ./bench/helm -concurrency 8 -cli-args --disable-openapi-validation
//
// -rtt adds a round trip between both contenders and the API server (a
// loopback TCP proxy, bench/internal/latency, that holds each chunk for
// half of it each way), to see a control plane that is not on the same
// machine, such as a managed cluster's; the hub stays local, and the
// benchmark's own bookkeeping goes to the API server directly:
//
//	go run ./bench/helm -concurrency 8 -rtt 10ms
//
// -agent-cpuprofile runs this program as the agent (agent mode: the same
// command tree as cmd/outpost-agent), which profiles itself over the
// measured installs, one file per concurrency:
//
//	go run ./bench/helm -concurrency 8 -agent-cpuprofile /tmp/agent.pprof
//	go tool pprof -top -cum /tmp/agent-c8.pprof
//
// Results are printed as markdown and appended to -results
// (bench/RESULTS.md) with the command, date, machine and its load.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/outposthq/outpost/bench/internal/benchmain"
)

// Targets from the issue.
const (
	targetSpeedup = 5.0       // agent releases/s ÷ CLI releases/s
	targetPeakKiB = 200 << 10 // agent VmHWM
)

// config is what the flags ask for.
type config struct {
	releases     int
	perNamespace int
	concurrency  []int
	results      string
	helm         string
	cliArgs      []string
	cli          bool
	binDir       string
	cpuprofile   string
	rtt          time.Duration
	settle       time.Duration
	timeout      time.Duration
	keep         bool
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("helm", flag.ContinueOnError)
	fs.IntVar(&c.releases, "releases", 200, "releases each side installs")
	fs.IntVar(&c.perNamespace, "per-namespace", 20, "releases per namespace")
	conc := fs.String("concurrency", "8,16", "comma-separated agent --concurrency values, one agent process and pass each (the agent's default is 8)")
	fs.StringVar(&c.results, "results", "bench/RESULTS.md", "markdown file the results are appended to (empty: none)")
	fs.StringVar(&c.helm, "helm", "", "helm CLI binary (default: the one hack/helmcli.sh builds)")
	cliArgs := fs.String("cli-args", "", "extra flags for every `helm install`, space-separated, such as --disable-openapi-validation (default: none, as a user types it)")
	fs.BoolVar(&c.cli, "cli", true, "run the helm CLI's pass (-cli=false measures the agent alone, to iterate on the executor; no ratio then)")
	fs.StringVar(&c.binDir, "bin-dir", "bin", "directory holding outpost-hub and outpost-agent (make build)")
	fs.StringVar(&c.cpuprofile, "agent-cpuprofile", "", "run this program as the agent and write its CPU profile over the measured installs here (-c<N> added per concurrency)")
	fs.DurationVar(&c.rtt, "rtt", 0, "round trip added between the contenders (helm CLI and agent) and the API server by a loopback proxy (0: none), to see a cluster that is not on the same machine")
	fs.DurationVar(&c.settle, "settle", 5*time.Second, "how long each agent process idles after connecting before its idle RSS is read")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Minute, "stop the whole benchmark after this long")
	fs.BoolVar(&c.keep, "keep", false, "keep the temp directory (chart, kubeconfig, hub and agent logs)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.cliArgs = strings.Fields(*cliArgs)
	for s := range strings.SplitSeq(*conc, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 256 {
			return c, fmt.Errorf("-concurrency: %q is not a number between 1 and 256", s)
		}
		c.concurrency = append(c.concurrency, n)
	}
	switch {
	case len(c.concurrency) == 0:
		return c, errors.New("-concurrency: name at least one value")
	case c.releases < 1 || c.releases > 2000:
		return c, errors.New("-releases must be between 1 and 2,000")
	case c.perNamespace < 1 || c.perNamespace > c.releases:
		return c, errors.New("-per-namespace must be between 1 and -releases")
	case c.rtt < 0 || c.rtt > time.Second:
		return c, errors.New("-rtt must be between 0 and 1s")
	case c.settle < 0:
		return c, errors.New("-settle may not be negative")
	case c.timeout <= 0:
		return c, errors.New("-timeout must be positive")
	}
	return c, nil
}

func main() {
	if os.Getenv(envAgentMode) == "1" {
		agentMain()
		return
	}
	benchmain.Main("helm", parseFlags, func(c config) time.Duration { return c.timeout }, run)
}
