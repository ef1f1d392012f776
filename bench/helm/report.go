package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/outposthq/outpost/bench/internal/outpostproc"
	"github.com/outposthq/outpost/bench/internal/procstat"
	"github.com/outposthq/outpost/bench/internal/report"
	"github.com/outposthq/outpost/bench/internal/stats"
)

// name says which side and setting a pass was.
func (p *pass) name() string {
	if p.agent {
		return fmt.Sprintf("agent, --concurrency %d", p.concurrency)
	}
	if len(p.cliArgs) > 0 {
		return "helm CLI " + strings.Join(p.cliArgs, " ") + ", one after another"
	}
	return "helm CLI, one after another"
}

// render writes the results as markdown: the throughput table, where the
// time goes, the agent's memory, then what the tables cannot say.
func render(cfg config, res *results) string {
	var cli *pass
	for _, p := range res.passes {
		if !p.agent {
			cli = p
		}
	}
	var b strings.Builder
	where := ""
	if cfg.rtt > 0 {
		where = fmt.Sprintf(", API server %v away", cfg.rtt)
	}
	fmt.Fprintf(&b, "| %d releases of a %d-template chart%s | wall | releases/s | per release p50 | p90 | p99 | agent ÷ CLI (releases/s) | ≥ %.0f× |\n",
		cfg.releases, res.chart.templates, where, targetSpeedup)
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, p := range res.passes {
		x, met := "—", "—"
		if p.agent && cli != nil && cli.rate() > 0 {
			r := p.rate() / cli.rate()
			x, met = fmt.Sprintf("%.2f×", r), stats.Verdict(r >= targetSpeedup)
		}
		fmt.Fprintf(&b, "| %s | %s | %.2f | %s | %s | %s | %s | %s |\n", p.name(), stats.Secs(p.wall), p.rate(),
			stats.Secs(p.latency.Median()), stats.Secs(p.latency.Quantile(0.9)), stats.Secs(p.latency.Quantile(0.99)), x, met)
	}
	b.WriteString("\n")

	b.WriteString("| where the time goes, per release | wall ÷ releases | client CPU | hub CPU | kube-apiserver CPU | etcd CPU | API requests |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|\n")
	for _, p := range res.passes {
		n := time.Duration(max(p.releases, 1))
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %.1f |\n", p.name(), stats.Secs(p.wall/n), stats.Secs(p.clientCPU/n),
			stats.Secs(p.hubCPU/n), stats.Secs(p.cost.Server/n), stats.Secs(p.cost.Etcd/n), float64(p.cost.Total())/float64(n))
	}
	b.WriteString("\n")

	b.WriteString("| agent, per release | executor: render and validate p50 / p90 | executor: install p50 / p90 | enqueue → finished p50 / p99 | enqueueing all |\n")
	b.WriteString("|---|---:|---:|---:|---:|\n")
	for _, p := range res.passes {
		if !p.agent {
			continue
		}
		fmt.Fprintf(&b, "| --concurrency %d | %s / %s | %s / %s | %s / %s | %s |\n", p.concurrency,
			stats.Secs(p.render.Median()), stats.Secs(p.render.P90()), stats.Secs(p.apply.Median()), stats.Secs(p.apply.P90()),
			stats.Secs(p.queued.Median()), stats.Secs(p.queued.Quantile(0.99)), stats.Secs(p.enqueue))
	}
	b.WriteString("\n")

	fmt.Fprintf(&b, "| outpost-agent process | idle (VmRSS) | peak (VmHWM) | at the end (VmRSS) | peak < %d MiB |\n", targetPeakKiB>>10)
	b.WriteString("|---|---:|---:|---:|---|\n")
	for _, p := range res.passes {
		if !p.agent {
			continue
		}
		fmt.Fprintf(&b, "| --concurrency %d, %d releases | %s | %s | %s | %s |\n", p.concurrency, p.releases,
			stats.MiB(p.idle), stats.MiB(p.peak), stats.MiB(p.end), stats.Verdict(p.peak > 0 && p.peak < targetPeakKiB))
	}
	b.WriteString("\n")

	c := res.chart
	versions := fmt.Sprintf("kube-apiserver %s; outpost-agent %s", res.serverVersion, agentVersion(res))
	if res.helmVersion != "" {
		versions += fmt.Sprintf("; helm %s (hack/helmcli.sh)", res.helmVersion)
	} else {
		versions += "; no helm CLI pass (-cli=false)"
	}
	details := []string{
		versions,
		fmt.Sprintf("chart: %d templates (%s), %.1f KiB of files, %.1f KiB packed; no hooks; each side installs into fresh namespaces of %d releases (%d namespaces)",
			c.templates, c.kinds, float64(c.bytes())/1024, float64(len(c.archive))/1024, cfg.perNamespace, (cfg.releases+cfg.perNamespace-1)/cfg.perNamespace),
		"per release: the helm process's wall time (CLI); the executor's own duration from its \"helm task done\" record (agent), which leaves out the hub's dispatch and the wait in the queue (enqueue → finished, in the third table)",
	}
	if cfg.rtt > 0 {
		details = append(details, fmt.Sprintf("API server round trip: %v added by a loopback proxy for the helm CLI and the agents (-rtt); the hub and the benchmark's own bookkeeping are not behind it", cfg.rtt))
	}
	for _, p := range res.passes {
		details = append(details, fmt.Sprintf("%s: machine %.0f%% busy (all processes: kube-apiserver, etcd, hub, agent or helm, anything else), load average %s at its end; API requests per release: %s",
			p.name(), 100*p.busy, p.load, p.cost.Per(p.releases)))
	}
	for _, p := range res.passes {
		if p.agent {
			line := fmt.Sprintf("agent process (--concurrency %d): `outpost-agent %s`", p.concurrency, strings.Join(outpostproc.RedactArgs(p.agentArgs), " "))
			if p.profile != "" {
				line += "; run as this benchmark in agent mode, CPU profile in " + p.profile
			}
			details = append(details, line)
		}
	}
	details = append(details, res.notes...)
	for _, d := range details {
		fmt.Fprintf(&b, "- %s\n", d)
	}
	return b.String()
}

func agentVersion(res *results) string {
	for _, p := range res.passes {
		if p.agent && p.agentVersion != "" {
			return p.agentVersion
		}
	}
	return "?"
}

// appendResults appends a dated section with the command, machine and
// rendered tables to cfg.results.
func appendResults(ctx context.Context, cfg config, args []string, tables string) error {
	section := report.Section("helm", args, procstat.Machine(ctx), procstat.LoadAverage(),
		"everything on 127.0.0.1: kube-apiserver and etcd (envtest), an outpost-hub process (SQLite), one outpost-agent process per concurrency, helm processes", tables)
	return report.Append(cfg.results, section)
}
