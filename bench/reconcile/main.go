// Command reconcile benchmarks releases and continuous reconciliation
// (DESIGN §7, issue 6): how long one agent takes to sync a thousand
// releases, how fast it undoes a manual edit, and what it costs and
// reports while nothing changes.
//
// # What runs
//
// A real kube-apiserver and etcd (internal/kube/kubetest, built from source
// by hack/testbins.sh) on 127.0.0.1; a real outpost-hub process on a fresh
// SQLite file and ONE real outpost-agent process (-bin-dir, from make
// build) with a least-privilege kubeconfig: Roles in its own namespace
// (outpost-system) and in -namespaces target namespaces, nothing
// cluster-wide. The agent runs with --log-level debug, because its
// reconciler logs "release synced" at that level, and with --resync only
// when -resync is given (--kube-qps only when -kube-qps is). There is no controller manager: Deployments get
// no pods and no status, which is all the reconciler looks at anyway.
//
// # What is measured
//
//  1. Apply: -releases manifests releases, each a ConfigMap, a Deployment
//     and a headless Service (envtest's Service CIDR holds 254 cluster
//     IPs), spread over the target namespaces, are applied through
//     OperatorService.ApplyRelease by -apply-concurrency callers; the
//     benchmark waits until ListReleases shows every one at applied
//     revision 1, then until the agent's log shows every one synced by
//     the reconciler.
//  2. First full sync: the agent is stopped (SIGTERM, which releases the
//     leader Lease) and started again with the identity it enrolled. The
//     time is from the new process's start to the log record of the last
//     release's first "release synced" line (the records' own times), with
//     the intermediate marks "leading", "reconciler started" and "desired
//     state loaded". Drift audit events counted over the restart must not
//     grow: a first sync that finds drift in untouched objects is false
//     drift.
//  3. Drift correction: -edits manual edits, one at a time -gap apart,
//     alternately of a random release's Deployment (container image) and
//     ConfigMap (a data value), each an Update by the field manager
//     "kubectl-edit". A watch on that one object, opened before the edit
//     at the resource version of a list of it, times edit-call-returned →
//     the first event that shows the desired value again. An edit not undone within
//     30 s is a miss. Reported: p50, p90, p99 (nearest rank), max; target
//     p99 < 1 s. The drift_corrected audit events the edits caused are
//     counted too (one per edit expected).
//  4. Idle: for -idle nothing is changed. Drift audit events
//     (release.drift_detected + release.drift_corrected, every event, not
//     distinct releases) are counted through ListAuditEvents before and
//     after; the difference must be 0. The agent's CPU time over the
//     window (as % of one core; target < 5 %) and its RSS (sampled every
//     5 s) are reported, with the busiest 30 s and the release syncs the
//     agent logged in the window, which show whether a periodic full
//     resync fell in it (the product's default period is 10 min, so the
//     default 10 min window holds one).
//
// Usage:
//
//	go run ./bench/reconcile
//	go run ./bench/reconcile -releases 200 -edits 20 -idle 1m -resync 30s
//	go run ./bench/reconcile -resync 2m -edits 30 -gap 3s -idle 1m   # edits during a resync
//
// Results are printed as markdown and appended to -results
// (bench/RESULTS.md) with the command, date, machine and its load.
package main

import (
	"errors"
	"flag"
	"time"

	"github.com/outposthq/outpost/bench/internal/benchmain"
)

// Targets of issue 6.
const (
	targetCorrectionP99 = time.Second
	targetIdleCPU       = 5.0 // % of one core
)

// config is what the flags ask for.
type config struct {
	releases         int
	namespaces       int
	applyConcurrency int
	edits            int
	gap              time.Duration
	idle             time.Duration
	resync           time.Duration
	kubeQPS          int
	seed             int64
	binDir           string
	results          string
	timeout          time.Duration
	keep             bool
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("reconcile", flag.ContinueOnError)
	fs.IntVar(&c.releases, "releases", 1000, "manifests releases applied (3 objects each)")
	fs.IntVar(&c.namespaces, "namespaces", 2, "target namespaces the releases are spread over")
	fs.IntVar(&c.applyConcurrency, "apply-concurrency", 8, "ApplyRelease calls in flight")
	fs.IntVar(&c.edits, "edits", 100, "manual edits whose correction is timed, one at a time")
	fs.DurationVar(&c.gap, "gap", 200*time.Millisecond, "pause after each edit was corrected")
	fs.DurationVar(&c.idle, "idle", 10*time.Minute, "idle window over which false drift, CPU and RSS are measured")
	fs.DurationVar(&c.resync, "resync", 0, "pass --resync to the agent (0: the agent's default, 10m)")
	fs.IntVar(&c.kubeQPS, "kube-qps", 0, "pass --kube-qps and twice it as --kube-burst to the agent (0: the agent's defaults; its reconciler then allows 100 requests/s)")
	fs.Int64Var(&c.seed, "seed", 1, "seed of the choice of edited releases")
	fs.StringVar(&c.binDir, "bin-dir", "bin", "directory holding outpost-hub and outpost-agent (make build)")
	fs.StringVar(&c.results, "results", "bench/RESULTS.md", "markdown file the results are appended to (empty: none)")
	fs.DurationVar(&c.timeout, "timeout", 90*time.Minute, "stop the whole benchmark after this long")
	fs.BoolVar(&c.keep, "keep", false, "keep the temp directory (hub and agent logs, kubeconfig)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case c.releases < 1 || c.releases > 10000:
		return c, errors.New("-releases must be between 1 and 10,000")
	case c.namespaces < 1 || c.namespaces > 20:
		return c, errors.New("-namespaces must be between 1 and 20")
	case c.applyConcurrency < 1 || c.applyConcurrency > 64:
		return c, errors.New("-apply-concurrency must be between 1 and 64")
	case c.edits < 1 || c.edits > 10000:
		return c, errors.New("-edits must be between 1 and 10,000")
	case c.gap < 0 || c.gap > time.Minute:
		return c, errors.New("-gap must be between 0 and 1m")
	case c.idle < 10*time.Second || c.idle > 2*time.Hour:
		return c, errors.New("-idle must be between 10s and 2h")
	case c.resync < 0 || (c.resync > 0 && c.resync < time.Second):
		return c, errors.New("-resync must be 0 (the agent's default) or at least 1s")
	case c.kubeQPS < 0 || c.kubeQPS > 10000:
		return c, errors.New("-kube-qps must be between 0 (the agent's default) and 10,000")
	case c.timeout <= 0:
		return c, errors.New("-timeout must be positive")
	}
	return c, nil
}

func main() {
	benchmain.Main("reconcile", parseFlags, func(c config) time.Duration { return c.timeout }, run)
}
