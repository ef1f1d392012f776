package main

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/outposthq/outpost/bench/internal/outpostproc"
	"github.com/outposthq/outpost/bench/internal/procstat"
	"github.com/outposthq/outpost/bench/internal/report"
	"github.com/outposthq/outpost/bench/internal/stats"
)

// agentPhases are the executor's CLI commands in the order it runs them.
var agentPhases = []string{"init", "plan", "apply", "output"}

// name says which side a pass was.
func (p *pass) name() string {
	if p.agent {
		return fmt.Sprintf("agent, --concurrency %d", p.concurrency)
	}
	return "tofu CLI, init && apply one module after another"
}

// render writes the results as markdown: wall time and the ratio, where
// the time goes, CPU, then memory, then what the tables cannot say.
func render(cfg config, res *results) string {
	var agent, cli *pass
	for _, p := range res.passes {
		if p.agent {
			agent = p
		} else {
			cli = p
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| %d modules of %d terraform_data resources | wall | per module p50 | p90 | max | CLI loop ÷ agent (wall) |\n", cfg.modules, cfg.resources)
	b.WriteString("|---|---:|---:|---:|---:|---:|\n")
	for _, p := range res.passes {
		x := "—"
		if p.agent && cli != nil && p.wall > 0 {
			x = fmt.Sprintf("%.2f×", stats.Ratio(cli.wall, p.wall))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", p.name(), stats.Secs(p.wall),
			stats.Secs(p.latency.Median()), stats.Secs(p.latency.P90()), stats.Secs(p.latency.Quantile(1)), x)
	}
	b.WriteString("\n")

	b.WriteString("| per module, p50 / p90 | init | plan | apply | output | enqueue → finished (p50 / max) |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|\n")
	for _, p := range res.passes {
		cells := make([]string, 0, len(agentPhases))
		for _, ph := range agentPhases {
			s, ok := p.phases[ph]
			if !ok {
				cells = append(cells, "—")
				continue
			}
			cells = append(cells, stats.Secs(s.Median())+" / "+stats.Secs(s.P90()))
		}
		queued := "—"
		if p.agent {
			queued = stats.Secs(p.queued.Median()) + " / " + stats.Secs(p.queued.Quantile(1))
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", p.name(), strings.Join(cells, " | "), queued)
	}
	b.WriteString("\n")

	b.WriteString("| CPU per module | wall ÷ modules | agent process | tofu processes | hub | kube-apiserver | etcd | API requests |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, p := range res.passes {
		n := time.Duration(max(p.modules, 1))
		own, tofu := "—", stats.Secs(p.clientCPU/n)
		if p.agent {
			own, tofu = stats.Secs(p.clientCPU/n), stats.Secs(p.childCPU/n)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %.1f |\n", p.name(), stats.Secs(p.wall/n), own, tofu,
			stats.Secs(p.hubCPU/n), stats.Secs(p.cost.Server/n), stats.Secs(p.cost.Etcd/n), float64(p.cost.Total())/float64(n))
	}
	b.WriteString("\n")

	if agent != nil {
		rss := make([]int64, 0, len(agent.samples))
		for _, s := range agent.samples {
			rss = append(rss, s.rss)
		}
		peak, tofus := peakSample(agent.samples)
		b.WriteString("| memory while applying | idle (VmRSS) | VmRSS p50 / max of samples | peak (VmHWM) | process tree at its peak: RSS sum / PSS sum | tofu processes at once (max) |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|\n")
		fmt.Fprintf(&b, "| outpost-agent, --concurrency %d, %d samples | %s | %s / %s | %s | %s / %s | %d |\n",
			agent.concurrency, len(agent.samples), stats.MiB(agent.idle), stats.MiB(kibQuantile(rss, 0.5)), stats.MiB(kibQuantile(rss, 1)),
			stats.MiB(agent.peak), stats.MiB(peak.treeRSS), stats.MiB(peak.treePSS), tofus)
		if cli != nil {
			fmt.Fprintf(&b, "| tofu CLI, one process at a time | — | — | each process's peak RSS: p50 %s, max %s | — | 1 |\n",
				stats.MiB(kibQuantile(cli.tofuRSS, 0.5)), stats.MiB(kibQuantile(cli.tofuRSS, 1)))
		}
		b.WriteString("\n")
	}

	m := res.module
	details := []string{
		fmt.Sprintf("kube-apiserver %s; outpost-agent %s; OpenTofu %s (hack/tofu.sh), the same binary on both sides", res.serverVersion, agentVersion(cfg, res), res.tofuVersion),
		fmt.Sprintf("module: %d terraform_data resources with inputs from 3 variables, %s, one output; %d files, %.1f KiB, %.1f KiB packed inline in each task; nothing downloaded (built-in provider)",
			m.Resources, latencyNote(cfg.latency), len(m.Files), float64(m.bytes())/1024, float64(len(m.Archive))/1024),
		fmt.Sprintf("state: the kubernetes backend of the same API server for both sides, a Secret and a lock Lease per workspace (agent: namespace %s, through --terraform-namespace; CLI: namespace %s, through an override file), deleted after each pass; every pass starts from empty state and creates every resource",
			cfg.agentNamespace, cfg.cliNamespace),
		"per module: the executor's CLI time, from the start of its init to the end of its output (its \"terraform phase\" records) for the agent, which runs three commands (init, plan -json to a file, apply that plan with -json, whose stream carries the outputs; output runs only when nothing was applied) besides tfexec's version check; init plus apply -auto-approve for the CLI, two commands; wall of the agent side is first enqueue → last finished_at at the hub",
		fmt.Sprintf("memory: sampled every %v while the agent applied (VmRSS of the agent; Rss and Pss of /proc/<pid>/smaps_rollup summed over the agent and its tofu children); RSS sums count the tofu binary's shared pages once per process, PSS shares them out", cfg.sample),
		"CPU: the agent process's own, and its reaped children's (the tofu processes) from /proc/<pid>/stat; the CLI's from each tofu process's rusage",
	}
	if agent != nil && cli != nil && agent.modules > 0 && cli.modules > 0 {
		perAgent, perCLI := agent.childCPU/time.Duration(agent.modules), cli.clientCPU/time.Duration(cli.modules)
		cpus := runtime.NumCPU()
		details = append(details, fmt.Sprintf("tofu CPU per module: %s under the agent (three commands and a version check) against %s for the CLI (two), %.1f×; on %d CPUs the agent's %d modules need at least %s of wall for tofu alone (modules × tofu CPU ÷ CPUs), against the CLI loop's %s",
			stats.Secs(perAgent), stats.Secs(perCLI), stats.Ratio(perAgent, perCLI), cpus, agent.modules,
			stats.Secs(time.Duration(agent.modules)*perAgent/time.Duration(cpus)), stats.Secs(cli.wall)))
	}
	for _, p := range res.passes {
		details = append(details, fmt.Sprintf("%s: machine %.0f%% busy (all processes: kube-apiserver, etcd, hub, agent, tofu, and anything else on the machine), load average %s at its end; API requests per module: %s",
			p.name(), 100*p.busy, p.load, p.cost.Per(p.modules)))
	}
	if agent != nil {
		details = append(details, fmt.Sprintf("agent's Kubernetes client: %d requests held over 1 s by client-go's client-side rate limiter while applying (its \"Waited before sending request\" log lines)", agent.throttled))
		details = append(details, fmt.Sprintf("agent process: `outpost-agent %s`", strings.Join(outpostproc.RedactArgs(agent.agentArgs), " ")))
	}
	for _, d := range details {
		fmt.Fprintf(&b, "- %s\n", d)
	}
	return b.String()
}

// kibQuantile returns the nearest-rank q-quantile of sizes.
func kibQuantile(kib []int64, q float64) int64 {
	if len(kib) == 0 {
		return 0
	}
	sorted := slices.Clone(kib)
	slices.Sort(sorted)
	rank := int(q*float64(len(sorted)) + 0.999999)
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func agentVersion(cfg config, res *results) string {
	if !cfg.agent {
		return "not run (-agent=false)"
	}
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
	section := report.Section("terraform", args, procstat.Machine(ctx), procstat.LoadAverage(),
		"everything on 127.0.0.1: kube-apiserver and etcd (envtest), an outpost-hub process (SQLite), one outpost-agent process running tofu processes, or tofu processes run one after another", tables)
	return report.Append(cfg.results, section)
}

// latencyNote says how resources are created: at once, or after a
// simulated provider latency.
func latencyNote(latency time.Duration) string {
	if latency <= 0 {
		return "no provisioners (created at once)"
	}
	return fmt.Sprintf("each created after a local-exec provisioner sleeping %v (-provider-latency, standing in for a cloud API)", latency)
}
