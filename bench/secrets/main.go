// Command secrets benchmarks a secret change end to end: from `outpost
// secret set` to the Kubernetes Secret holding the new values and to the
// pod template of a workload that follows the secret carrying the new
// checksum, which is what rolls its pods (DESIGN §5, smart rollouts).
//
// # What runs
//
// A real kube-apiserver and etcd (internal/kube/kubetest, built from source
// by hack/testbins.sh) on 127.0.0.1; a real outpost-hub process on a fresh
// SQLite file and a real outpost-agent process with --kubeconfig (bin/,
// from make build), enrolled into bench/prod. The agent creates the
// environment key and publishes it; the benchmark waits for the hub to
// hold it. A Deployment "web" in namespace "app" is annotated
// outpost.dev/restart-on-secrets: <secret>. There is no controller
// manager, so no pod rolls: the end point is the patch of the pod
// template, which is all the agent does.
//
// # What is measured
//
// -updates times, one after another after -warmup unmeasured ones: the
// CLI's `secret set prod <secret> -n app` with -keys fresh random values of
// -value-bytes each, run in this process as cmd/outpost runs it (a new
// client and TLS connection per call; it asks the hub who it is and for
// the environment's keys, seals locally and sends SetSecret). Per update,
// from the start of the command:
//
//   - set: the command returned (the hub stored the sealed value and queued
//     the task);
//   - Secret: a watch on the Secret saw its checksum annotation equal to
//     the checksum of the new values (internal/executor/secret.Checksum);
//   - rollout: a watch on the Deployment saw its pod template's
//     outpost.dev/secrets-checksum change.
//
// Reported: p50 and p99 (nearest rank) and the maximum of each; the target
// is rollout p99 < 1 s.
//
// Usage:
//
//	go run ./bench/secrets
//	go run ./bench/secrets -updates 300 -value-bytes 4096
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

// targetP99 is the target for a change to reach the workload.
const targetP99 = time.Second

// config is what the flags ask for.
type config struct {
	updates    int
	warmup     int
	keys       int
	valueBytes int
	binDir     string
	results    string
	timeout    time.Duration
	keep       bool
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("secrets", flag.ContinueOnError)
	fs.IntVar(&c.updates, "updates", 100, "measured updates of the secret")
	fs.IntVar(&c.warmup, "warmup", 5, "unmeasured updates before them")
	fs.IntVar(&c.keys, "keys", 3, "keys per secret")
	fs.IntVar(&c.valueBytes, "value-bytes", 64, "bytes per value")
	fs.StringVar(&c.binDir, "bin-dir", "bin", "directory holding outpost-hub and outpost-agent (make build)")
	fs.StringVar(&c.results, "results", "bench/RESULTS.md", "markdown file the results are appended to (empty: none)")
	fs.DurationVar(&c.timeout, "timeout", 15*time.Minute, "stop the whole benchmark after this long")
	fs.BoolVar(&c.keep, "keep", false, "keep the temp directory (hub and agent logs, kubeconfig)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case c.updates < 1 || c.updates > 10000:
		return c, errors.New("-updates must be between 1 and 10,000")
	case c.warmup < 0 || c.warmup > 100:
		return c, errors.New("-warmup must be between 0 and 100")
	case c.keys < 1 || c.keys > 64:
		return c, errors.New("-keys must be between 1 and 64")
	case c.valueBytes < 1 || c.keys*c.valueBytes > 512<<10:
		return c, errors.New("-value-bytes must be positive and -keys × -value-bytes at most 512 KiB")
	case c.timeout <= 0:
		return c, errors.New("-timeout must be positive")
	}
	return c, nil
}

func main() {
	benchmain.Main("secrets", parseFlags, func(c config) time.Duration { return c.timeout }, run)
}
