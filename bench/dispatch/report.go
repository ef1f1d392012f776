package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/outposthq/outpost/bench/internal/procstat"
	"github.com/outposthq/outpost/bench/internal/report"
)

// Targets from the issue.
const (
	targetP99 = 50 * time.Millisecond
	targetTPS = 2000
)

func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
}

func mib(kib int64) string { return fmt.Sprintf("%.0f MiB", float64(kib)/1024) }

func renderTable(results []outcome) string {
	var b strings.Builder
	b.WriteString("| store | agents | load | tasks | tasks/s | p50 | p90 | p99 | max | hub RSS idle | hub RSS peak (VmHWM) | hub RSS end | p99 < 50 ms | ≥ 2,000 tasks/s |\n")
	b.WriteString("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, o := range results {
		if o.skipped != "" {
			r := o.rows[0]
			fmt.Fprintf(&b, "| %s | %d | %s | | | | | | | | | | | |\n", r.store, r.agents, o.skipped)
			continue
		}
		for _, r := range o.rows {
			s := r.stats
			idle, peak, end := mib(r.mem.idle), mib(r.mem.peak), mib(r.mem.end)
			lat, tps := "—", "—"
			if r.latencyTarget {
				lat = verdict(s.lat.n > 0 && s.lat.p99 < targetP99 && s.executed == s.enqueued && !s.saturated)
			}
			if r.throughputTarget {
				tps = verdict(s.tps >= targetTPS && s.completed == s.enqueued)
			}
			tasks := fmt.Sprint(s.completed)
			if s.completed != s.enqueued || s.enqErrors > 0 {
				tasks = fmt.Sprintf("%d of %d (%d enqueue errors)", s.completed, s.enqueued, s.enqErrors)
			}
			if s.saturated {
				tasks += " (saturated: stopped early)"
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				r.store, r.agents, r.load, tasks, s.tps, ms(s.lat.p50), ms(s.lat.p90), ms(s.lat.p99), ms(s.lat.max),
				idle, peak, end, lat, tps)
		}
	}
	return b.String()
}

func verdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

const resultsHeader = `# Benchmark results

Each section is appended by a benchmark program; see its doc comment for
what it measures.
`

// appendResults appends a dated section with the command, machine, table
// and checks to cfg.results.
func appendResults(ctx context.Context, cfg config, args []string, results []outcome, table string) error {
	var b strings.Builder
	if _, err := os.Stat(cfg.results); os.IsNotExist(err) {
		b.WriteString(resultsHeader)
	}
	fmt.Fprintf(&b, "\n## dispatch, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- command: `%s`\n", report.Command("./bench/dispatch", args))
	fmt.Fprintf(&b, "- machine: %s\n", procstat.Machine(ctx))
	fmt.Fprintf(&b, "- hub: %s; agents, operator client and load generator in the benchmark process, all on 127.0.0.1\n", hubWhere(cfg))
	fmt.Fprintf(&b, "- per configuration: %d warm-up tasks (not counted), then one row per phase, each up to %d tasks or %v of enqueueing; steady rows enqueue open-loop at the rate shown, the burst row with %d callers back to back; latency = EnqueueTask call start → executor start; tasks/s = results recorded by the hub ÷ (last result − first enqueue)\n\n",
		cfg.warmup, cfg.tasks, cfg.duration, cfg.enqueuers)
	b.WriteString(table)
	b.WriteString("\n")
	for _, o := range results {
		for _, d := range o.details {
			fmt.Fprintf(&b, "- %s\n", d)
		}
		if o.verify != "" {
			fmt.Fprintf(&b, "- %s\n", o.verify)
		}
	}
	return report.Append(cfg.results, b.String())
}

func hubWhere(cfg config) string {
	if cfg.profileDir != "" {
		return "separate process (this program in hub mode, keeping a CPU profile)"
	}
	return "separate outpost-hub process"
}
