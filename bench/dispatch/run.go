package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/outposthq/outpost/bench/internal/procstat"
	"github.com/outposthq/outpost/bench/internal/report"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
)

// row is one line of the results table.
type row struct {
	store  string
	agents int
	load   string
	stats  phaseStats
	mem    hubMemory
	// latencyTarget / throughputTarget say which targets this row is
	// judged on.
	latencyTarget, throughputTarget bool
}

// hubMemory is the hub's memory over one configuration, in KiB.
type hubMemory struct {
	idle      int64 // VmRSS with the fleet connected, before load
	peak, end int64 // VmHWM and VmRSS at the end
}

// outcome is one configuration's rows and checks.
type outcome struct {
	rows    []row
	details []string // one line per row: the full measurements
	verify  string
	skipped string
}

func run(ctx context.Context, cfg config, args []string) error {
	need := uint64(0)
	for _, n := range cfg.agents {
		need = max(need, uint64(n))
	}
	if err := raiseFileLimit(2*need + 512); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "outpost-bench-")
	if err != nil {
		return err
	}
	if cfg.keep {
		fmt.Fprintf(os.Stderr, "keeping %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	runner := hubRunner{bin: cfg.hubBin}
	switch {
	case cfg.profileDir != "":
		// The benchmark itself, in hub mode, so the hub can profile itself.
		if runner.bin, err = os.Executable(); err != nil {
			return err
		}
		if runner.profileDir, err = filepath.Abs(cfg.profileDir); err != nil {
			return err
		}
		if err := os.MkdirAll(runner.profileDir, 0o750); err != nil {
			return err
		}
		runner.env = []string{envHubMode + "=1"}
	case runner.bin == "":
		fmt.Fprintln(os.Stderr, "building ./cmd/outpost-hub …")
		if runner.bin, err = buildHub(ctx, tmp); err != nil {
			return err
		}
	}
	// The endpoint the tasks name; the benchmark's executor never calls it.
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	defer endpoint.Close()

	var results []outcome
	for _, st := range cfg.stores {
		for _, n := range cfg.agents {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			dir := filepath.Join(tmp, fmt.Sprintf("%s-%d", st, n))
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "\n== %s, %d agents ==\n", st, n)
			out, err := runConfig(ctx, cfg, runner, st, n, dir, endpoint.URL)
			if err != nil {
				return fmt.Errorf("%s, %d agents: %w", st, n, err)
			}
			results = append(results, out)
		}
	}
	tables := renderTable(results)
	return report.Publish(cfg.results, tables, func() error { return appendResults(ctx, cfg, args, results, tables) })
}

func runConfig(ctx context.Context, cfg config, runner hubRunner, storeName string, n int, dir, endpoint string) (outcome, error) {
	out := outcome{}
	db := filepath.Join(dir, "hub.db")
	if storeName == "postgres" {
		pg, err := createDatabase(ctx, cfg.postgresURL)
		if err != nil {
			msg := fmt.Sprintf("PostgreSQL skipped: %v", err)
			fmt.Fprintln(os.Stderr, msg)
			out.skipped = msg
			out.rows = append(out.rows, row{store: storeName, agents: n})
			return out, nil
		}
		defer func() {
			if err := pg.Drop(ctx); err != nil {
				fmt.Fprintln(os.Stderr, "warning:", err)
			}
		}()
		db = pg.URL
	}
	h, err := runner.startHub(ctx, db, dir)
	if err != nil {
		return out, err
	}
	defer func() { _ = h.Stop() }()
	op := &operator{OperatorServiceClient: h.Operator}

	logFile, err := os.Create(filepath.Join(dir, "agents.log")) //nolint:gosec // our own temp dir
	if err != nil {
		return out, err
	}
	defer logFile.Close()
	log := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: cfg.agentLog}))

	t0 := time.Now()
	tokens, err := op.bootstrapTokens(ctx, n)
	if err != nil {
		return out, err
	}
	fmt.Fprintf(os.Stderr, "%d environments and bootstrap tokens in %v\n", n, time.Since(t0).Round(time.Millisecond))
	rec := &recorder{}
	t0 = time.Now()
	fl, err := startFleet(ctx, h, tokens, dir, cfg, rec, log)
	if err != nil {
		return out, err
	}
	defer fl.Stop()
	fmt.Fprintf(os.Stderr, "%d agents enrolled and watching in %v\n", n, time.Since(t0).Round(time.Millisecond))

	// Let enrollment's garbage settle before reading the idle footprint.
	time.Sleep(2 * time.Second)
	var mem hubMemory
	if m, err := procstat.ReadMemory(h.PID()); err == nil {
		mem.idle = m.RSS
	}

	ld, err := newLoader(op, fl.envs, endpoint, rec)
	if err != nil {
		return out, err
	}
	if cfg.warmup > 0 {
		w := newPhase("warm-up", 'w', cfg.warmup)
		rec.register(w)
		ld.burst(ctx, w, cfg.enqueuers, cfg.duration)
		drain(ctx, w, cfg.drain)
		fmt.Fprintf(os.Stderr, "warm-up: %d tasks\n", w.completed.Load())
	}

	stopProfile := h.StartProfile()
	measure := func(p *phase, steady bool, send func() (int, bool)) row {
		rec.register(p)
		var sent int
		var saturated bool
		calls := rec.callCounts()
		usage := measureCPU(h.PID(), func() {
			sent, saturated = send()
			drain(ctx, p, cfg.drain)
		})
		s := p.stats(steady)
		s.cpu, s.saturated = usage, saturated
		s.calls = callsPerTask(calls, rec.callCounts(), s.enqueued)
		detail := fmt.Sprintf("%s/%d, %s: %s", storeName, n, p.name, describe(s, sent))
		fmt.Fprintln(os.Stderr, detail)
		out.details = append(out.details, detail)
		return row{store: storeName, agents: n, load: p.name, stats: s, latencyTarget: steady, throughputTarget: !steady}
	}
	var rows []row
	for k, rate := range cfg.rates {
		p := newPhase(fmt.Sprintf("steady %d/s", rate), byte('0'+k), cfg.tasks)
		rows = append(rows, measure(p, true, func() (int, bool) { return ld.steady(ctx, p, rate, cfg.duration) }))
	}
	p := newPhase(fmt.Sprintf("burst, %d callers", cfg.enqueuers), 'b', cfg.tasks)
	rows = append(rows, measure(p, false, func() (int, bool) { return ld.burst(ctx, p, cfg.enqueuers, cfg.duration), false }))
	stopProfile()

	if m, err := procstat.ReadMemory(h.PID()); err == nil {
		mem.peak, mem.end = m.HWM, m.RSS
	}
	for i := range rows {
		rows[i].mem = mem
	}
	out.rows = rows

	counts, err := op.taskCounts(ctx)
	if err != nil {
		return out, err
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	succeeded := counts[outpostv1.TaskState_TASK_STATE_SUCCEEDED]
	out.verify = fmt.Sprintf("%s/%d: ListTasks finds %d tasks, %d succeeded", storeName, n, total, succeeded)
	if succeeded != total {
		out.verify += fmt.Sprintf(" (others: %v)", counts)
	}
	if f := fl.failed.Load(); f > 0 {
		out.verify += fmt.Sprintf("; %d agents stopped with an error (last: %v)", f, fl.err())
	}
	fmt.Fprintln(os.Stderr, out.verify)
	return out, nil
}

func describe(s phaseStats, sent int) string {
	sat := ""
	if s.saturated {
		sat = "SATURATED (stopped early: too many enqueue calls in flight); "
	}
	return sat + fmt.Sprintf("%d sent, %d enqueued (%d errors), %d executed, %d completed in %v = %.0f tasks/s; latency p50 %v p90 %v p99 %v max %v; enqueue call p50 %v p99 %v; schedule lag p99 %v; redeliveries %d; %s; %s",
		sent, s.enqueued, s.enqErrors, s.executed, s.completed, s.wall.Round(time.Millisecond), s.tps,
		ms(s.lat.p50), ms(s.lat.p90), ms(s.lat.p99), ms(s.lat.max), ms(s.enqCall.p50), ms(s.enqCall.p99), ms(s.lag.p99), s.dupExec, s.cpu, s.calls)
}

// cpuUsage is the CPU the hub and this process used during a phase, in
// cores (CPU seconds per second).
type cpuUsage struct {
	hub, bench float64
	// machine is the share of all CPUs busy (any process, PostgreSQL
	// included), 0 to 1.
	machine float64
}

func (u cpuUsage) String() string {
	return fmt.Sprintf("CPU: hub %.2f cores, agents and load %.2f cores, machine %.0f%% busy", u.hub, u.bench, 100*u.machine)
}

func measureCPU(hubPID int, fn func()) cpuUsage {
	self := os.Getpid()
	h0, _ := procstat.CPUTime(hubPID)
	b0, _ := procstat.CPUTime(self)
	busy := procstat.StartBusy()
	t0 := time.Now()
	fn()
	wall := time.Since(t0).Seconds()
	h1, _ := procstat.CPUTime(hubPID)
	b1, _ := procstat.CPUTime(self)
	return cpuUsage{hub: (h1 - h0).Seconds() / wall, bench: (b1 - b0).Seconds() / wall, machine: busy.Share()}
}

// raiseFileLimit lifts the soft open-file limit to at least need (up to
// the hard limit): every agent holds a connection, and so does the hub for
// each when it runs in this process.
func raiseFileLimit(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("open-file limit: %w", err)
	}
	if lim.Cur >= need {
		return nil
	}
	if lim.Max < need {
		return errors.New("the hard open-file limit (ulimit -Hn) is " + fmt.Sprint(lim.Max) + ", the benchmark needs " + fmt.Sprint(need) + "; raise it or run fewer agents")
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raise the open-file limit: %w", err)
	}
	return nil
}
