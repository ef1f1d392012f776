// Command dispatch benchmarks how fast one hub hands work to a fleet of
// agents.
//
// # What runs
//
// For every store (-stores) and fleet size (-agents) the benchmark starts a
// fresh hub as a separate process, built from ./cmd/outpost-hub, so that
// its memory can be read from /proc/<pid>/status:
//
//	outpost-hub serve --db <SQLite file | postgres://…/outpost_bench_<random>> \
//	    --listen 127.0.0.1:<free port> --dev-tls-dir <tmp>
//
// PostgreSQL runs get a database of their own, created on
// postgres://postgres@127.0.0.1:5432/postgres (OUTPOST_BENCH_POSTGRES_URL
// overrides) and dropped afterwards; when PostgreSQL is unreachable its
// runs are skipped with a message.
//
// N agents then run inside the benchmark process: real agent.Agent values
// (internal/agent), each in its own goroutines with its own Ed25519
// identity, enrolled with its own bootstrap token, and its own HTTP client,
// so each holds one TLS connection (HTTP/2) to the hub over loopback, just
// as N agent processes would. Every agent serves its own environment
// (bench/e0000, bench/e0001, …): one agent per environment is the common
// shape of a fleet (one agent per cluster or VPC), and it is also the
// hardest case for wake-ups, which the hub fans out per environment.
//
// Tasks are real operator API calls (EnqueueTask over Connect, from one
// operator client) of kind http with a valid http spec that names a
// loopback endpoint. The agents' http executor is replaced by one that
// returns {} at once without calling the endpoint: the benchmark measures
// the hub's dispatch path (enqueue → wake-up → claim → report), not an
// endpoint.
//
// # What is measured
//
//   - latency: per task, from the start of its EnqueueTask call to the
//     moment the agent starts its executor (agent.Options.OnExecutorStart);
//     p50, p90, p99 and max.
//   - throughput: tasks whose result the hub recorded (the agent's
//     ReportResult call returned OK, observed on the agent's HTTP client)
//     divided by the time from the first enqueue to the last recorded
//     result. A final ListTasks checks that every task ended succeeded.
//   - hub memory: VmRSS with the fleet connected and idle, VmHWM (peak) and
//     VmRSS at the end of the run.
//
// Each configuration runs a short warm-up (not measured), then one steady
// phase per -rate that enqueues at that many tasks/s (open loop: calls
// start on schedule whether or not earlier ones have returned, so a slow
// hub cannot hide its latency by slowing the sender), then a burst phase
// in which -enqueuers callers enqueue back to back. The p99 target is
// judged on the steady phases, the throughput target on the burst phase.
// Each phase is bounded by -tasks and -duration; a steady phase the hub
// cannot keep up with stops early (too many calls in flight) and says so.
// Every run stops by itself.
//
// Beside the table, each phase reports the EnqueueTask call time, how late
// open-loop calls started, the CPU the hub and the benchmark used and how
// busy the whole machine was, and the agents' calls per task by method.
//
// Usage:
//
//	go run ./bench/dispatch -agents 100,1000 -stores sqlite,postgres
//
// To see where the hub spends its CPU, -hub-cpuprofile-dir runs the hub as
// this program in hub mode (the same command tree as cmd/outpost-hub),
// which profiles itself over the measured phases:
//
//	go run ./bench/dispatch -agents 1000 -stores sqlite -hub-cpuprofile-dir /tmp/prof
//	go tool pprof -top -cum /tmp/prof/hub-sqlite-1000.pprof
//
// Results are printed as a markdown table and appended to -results
// (bench/RESULTS.md) with the command, date and machine.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/outposthq/outpost/bench/internal/benchmain"
)

// config is what the flags ask for.
type config struct {
	agents      []int
	stores      []string
	tasks       int
	duration    time.Duration
	rates       []int
	enqueuers   int
	warmup      int
	concurrency int
	stagger     int
	drain       time.Duration
	postgresURL string
	results     string
	hubBin      string
	profileDir  string
	keep        bool
	agentLog    slog.Level
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("dispatch", flag.ContinueOnError)
	agents := fs.String("agents", "100,1000", "comma-separated fleet sizes")
	stores := fs.String("stores", "sqlite,postgres", "comma-separated stores: sqlite, postgres")
	fs.IntVar(&c.tasks, "tasks", 20000, "tasks per measured phase (steady and burst each)")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "longest enqueue window of one phase")
	rates := fs.String("rate", "100,250,500", "comma-separated enqueue rates in tasks/s, one steady phase each (0 or empty: none)")
	fs.IntVar(&c.enqueuers, "enqueuers", 64, "concurrent EnqueueTask callers in the burst phase")
	fs.IntVar(&c.warmup, "warmup", 500, "warm-up tasks before measuring (not counted)")
	fs.IntVar(&c.concurrency, "concurrency", 0, "tasks each agent runs at once (0: the agent's default)")
	fs.IntVar(&c.stagger, "stagger", 50, "agents started together; the next batch waits until these hold their Watch stream")
	fs.DurationVar(&c.drain, "drain", 60*time.Second, "how long to wait for outstanding tasks after a phase's last enqueue")
	fs.StringVar(&c.postgresURL, "postgres-url", envOr("OUTPOST_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"),
		"PostgreSQL server URL; a database outpost_bench_<random> is created on it and dropped after the run (env OUTPOST_BENCH_POSTGRES_URL)")
	fs.StringVar(&c.results, "results", "bench/RESULTS.md", "markdown file the results are appended to (empty: none)")
	fs.StringVar(&c.hubBin, "hub-bin", "", "outpost-hub binary to run (default: go build ./cmd/outpost-hub into a temp dir)")
	fs.StringVar(&c.profileDir, "hub-cpuprofile-dir", "", "write a CPU profile of the hub during the measured phases to <dir>/hub-<store>-<agents>.pprof (the hub then runs as this program in hub mode)")
	fs.BoolVar(&c.keep, "keep", false, "keep the temp directory (hub and agent logs, SQLite files) for inspection")
	fs.TextVar(&c.agentLog, "agent-log-level", slog.LevelWarn, "level of the agents' log (agents.log in the temp directory)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var err error
	if c.agents, err = parseInts(*agents, 10000); err != nil {
		return c, fmt.Errorf("-agents: %w", err)
	}
	if *rates != "" && *rates != "0" {
		if c.rates, err = parseInts(*rates, 100000); err != nil {
			return c, fmt.Errorf("-rate: %w", err)
		}
		if len(c.rates) > 10 {
			return c, errors.New("-rate: at most 10 rates")
		}
	}
	for s := range strings.SplitSeq(*stores, ",") {
		switch s = strings.TrimSpace(s); s {
		case "sqlite", "postgres":
			c.stores = append(c.stores, s)
		case "":
		default:
			return c, fmt.Errorf("-stores: unknown store %q (sqlite or postgres)", s)
		}
	}
	switch {
	case len(c.stores) == 0:
		return c, errors.New("-stores: name at least one store")
	case c.tasks <= 0 || c.tasks > 1_000_000:
		return c, errors.New("-tasks must be between 1 and 1,000,000")
	case c.duration <= 0:
		return c, errors.New("-duration must be positive")
	case c.enqueuers <= 0:
		return c, errors.New("-enqueuers must be positive")
	case c.stagger <= 0:
		return c, errors.New("-stagger must be positive")
	case c.warmup < 0:
		return c, errors.New("-warmup must not be negative")
	}
	return c, nil
}

func parseInts(s string, limit int) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(strings.ReplaceAll(f, "_", ""))
		if err != nil || n <= 0 || n > limit {
			return nil, fmt.Errorf("%q is not a number between 1 and %d", f, limit)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("name at least one number")
	}
	return out, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func main() {
	if os.Getenv(envHubMode) == "1" {
		hubMain()
		return
	}
	benchmain.Main("dispatch", parseFlags, nil, run)
}
