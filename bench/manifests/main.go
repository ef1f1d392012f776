// Command manifests benchmarks the agent's manifests task kind: how fast it
// applies a large bundle compared with kubectl, how it runs many small
// bundles at once, and how much memory the agent process holds.
//
// # What runs
//
// A real kube-apiserver and etcd (internal/kube/kubetest, built from source
// by hack/testbins.sh) on 127.0.0.1, used as cluster administrator by both
// contenders. Everything is loopback; every phase is bounded and the
// program stops by itself.
//
// The bundle is generated: -objects objects cycling through ConfigMap
// (2–8 KiB of settings each), ServiceAccount, Service, Deployment (a
// realistic pod template), Role and RoleBinding, one YAML file of six
// documents per "app". The same content (only the namespace differs) is
// given to both tools.
//
// # What is measured
//
//  1. Large bundle, -runs times, each run in fresh namespaces, the order of
//     the two tools alternating from run to run to spread machine noise:
//     - kubectl: `kubectl apply --server-side --field-manager=bench -f <dir>`
//     with kubectl built from the same k8s.io/kubernetes module as the
//     kube-apiserver (hack/testbins.sh kubectl), one process per apply, its
//     discovery cache warm; the wall time of the process.
//     - agent: the manifests executor (internal/executor/manifests) called
//     in this process as the agent calls it, with the bundle as a task
//     artifact served from memory; the wall time of Execute.
//     Each applies twice: fresh (every object created) and again unchanged
//     (no-op). Reported: median, p90 (nearest rank) and kubectl ÷ agent.
//  2. Small bundles: -small-bundles bundles of -small-objects objects, each
//     its own release, through the executor one after another, then
//     -parallel at a time (default: the agent's pool size); wall time and
//     ratio.
//  3. Agent memory: a real outpost-agent process (bin/, from make build)
//     enrolled with a real outpost-hub process (SQLite) with --kubeconfig;
//     VmRSS once it holds its Watch stream and has settled (idle), then a
//     manifests task with the large bundle uploaded as an artifact through
//     the operator API; VmHWM (peak) and VmRSS when the task has
//     succeeded.
//
// Usage:
//
//	make bench-manifests
//	go run ./bench/manifests -objects 1000 -runs 5
//
// -rtt adds a round trip between both contenders and the API server (a
// loopback TCP proxy that holds each chunk for half of it each way), to
// see a control plane that is not on the same machine:
//
//	go run ./bench/manifests -phases apply,small -rtt 10ms
//
// -cpuprofile writes a CPU profile of this process over the executor's
// large-bundle applies only (kubectl is another process):
//
//	go run ./bench/manifests -runs 3 -phases apply -cpuprofile /tmp/manifests.pprof
//	go tool pprof -top -cum /tmp/manifests.pprof
//
// Results are printed as markdown and appended to -results
// (bench/RESULTS.md) with the command, date, machine and its load.
package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/outposthq/outpost/bench/internal/benchmain"
)

// Targets from the issue.
const (
	targetSpeedup = 2.0      // kubectl time ÷ agent time, 1,000 objects
	targetIdleKiB = 40 << 10 // agent VmRSS idle
)

// config is what the flags ask for.
type config struct {
	objects      int
	runs         int
	smallBundles int
	smallObjects int
	parallel     int
	phases       map[string]bool
	results      string
	kubectl      string
	binDir       string
	cpuprofile   string
	settle       time.Duration
	rtt          time.Duration
	timeout      time.Duration
	keep         bool
}

var allPhases = []string{"apply", "small", "rss"}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("manifests", flag.ContinueOnError)
	fs.IntVar(&c.objects, "objects", 1000, "objects in the large bundle")
	fs.IntVar(&c.runs, "runs", 5, "measured runs of the large bundle per tool (each a fresh and a no-op apply)")
	fs.IntVar(&c.smallBundles, "small-bundles", 100, "small bundles (one release each) in the small-bundle phase")
	fs.IntVar(&c.smallObjects, "small-objects", 5, "objects per small bundle")
	fs.IntVar(&c.parallel, "parallel", 0, "small bundles applied at once in the parallel pass (0: the agent's default pool size)")
	phases := fs.String("phases", strings.Join(allPhases, ","), "comma-separated phases to run: apply (large bundle, agent vs kubectl), small (many small bundles), rss (agent process memory)")
	fs.StringVar(&c.results, "results", "bench/RESULTS.md", "markdown file the results are appended to (empty: none)")
	fs.StringVar(&c.kubectl, "kubectl", "", "kubectl binary (default: kubectl beside kube-apiserver, built by hack/testbins.sh kubectl)")
	fs.StringVar(&c.binDir, "bin-dir", "bin", "directory holding outpost-hub and outpost-agent (make build)")
	fs.StringVar(&c.cpuprofile, "cpuprofile", "", "write a CPU profile of the executor's large-bundle applies to this file")
	fs.DurationVar(&c.rtt, "rtt", 0, "round trip added between the contenders and the API server by a loopback proxy (0: none), to see a cluster that is not on the same machine")
	fs.DurationVar(&c.settle, "settle", 10*time.Second, "how long the agent process idles after connecting before its idle RSS is read")
	fs.DurationVar(&c.timeout, "timeout", 90*time.Minute, "stop the whole benchmark after this long")
	fs.BoolVar(&c.keep, "keep", false, "keep the temp directory (bundles, kubeconfig, hub and agent logs)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.phases = map[string]bool{}
	for p := range strings.SplitSeq(*phases, ",") {
		switch p = strings.TrimSpace(p); p {
		case "apply", "small", "rss":
			c.phases[p] = true
		case "":
		default:
			return c, fmt.Errorf("-phases: unknown phase %q (apply, small, rss)", p)
		}
	}
	switch {
	case len(c.phases) == 0:
		return c, errors.New("-phases: name at least one phase")
	case c.objects < 1 || c.objects > 10000:
		return c, errors.New("-objects must be between 1 and 10,000")
	case c.runs < 1 || c.runs > 50:
		return c, errors.New("-runs must be between 1 and 50")
	case c.smallBundles < 1 || c.smallBundles > 1000:
		return c, errors.New("-small-bundles must be between 1 and 1,000")
	case c.smallObjects < 1 || c.smallObjects > 100:
		return c, errors.New("-small-objects must be between 1 and 100")
	case c.parallel < 0 || c.parallel > 256:
		return c, errors.New("-parallel must be between 0 and 256")
	case c.rtt < 0 || c.rtt > time.Second:
		return c, errors.New("-rtt must be between 0 and 1s")
	case c.timeout <= 0:
		return c, errors.New("-timeout must be positive")
	}
	return c, nil
}

func main() {
	benchmain.Main("manifests", parseFlags, func(c config) time.Duration { return c.timeout }, run)
}
