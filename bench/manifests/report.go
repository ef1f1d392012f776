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

// render writes the results as markdown: one table per phase, then what
// the tables cannot say.
func render(cfg config, res *results) string {
	var b strings.Builder
	if a := res.apply; a != nil {
		where := ""
		if cfg.rtt > 0 {
			where = fmt.Sprintf(", API server %v away", cfg.rtt)
		}
		fmt.Fprintf(&b, "| apply of %d objects%s | runs | kubectl median | kubectl p90 | agent median | agent p90 | kubectl ÷ agent (median) | agent ≥ %.0f× faster |\n", a.objects, where, targetSpeedup)
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---|\n")
		for pass, name := range passNames {
			kube, agnt := a.kubectl[pass].wall, a.agent[pass].wall
			x := stats.Ratio(kube.Median(), agnt.Median())
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %.2f× | %s |\n", name, len(kube),
				stats.Secs(kube.Median()), stats.Secs(kube.P90()), stats.Secs(agnt.Median()), stats.Secs(agnt.P90()), x, stats.Verdict(x >= targetSpeedup))
		}
		b.WriteString("\n")
		b.WriteString("| where the time goes (medians per apply) | wall | client CPU | kube-apiserver CPU | etcd CPU | executor's validation | API requests (last run) |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---|\n")
		for pass, name := range passNames {
			for _, t := range []struct {
				tool string
				m    *measured
			}{{"kubectl", &a.kubectl[pass]}, {"agent", &a.agent[pass]}} {
				validate := "—"
				if len(t.m.validate) > 0 {
					validate = stats.Secs(t.m.validate.Median())
				}
				fmt.Fprintf(&b, "| %s, %s | %s | %s | %s | %s | %s | %s |\n", t.tool, name, stats.Secs(t.m.wall.Median()),
					stats.Secs(t.m.client.Median()), stats.Secs(t.m.server.Median()), stats.Secs(t.m.etcd.Median()), validate, t.m.last)
			}
		}
		b.WriteString("\n")
	}
	if s := res.small; s != nil {
		fmt.Fprintf(&b, "| %d bundles × %d objects (one release each) | wall | per bundle |\n", s.bundles, s.objects)
		b.WriteString("|---|---:|---:|\n")
		fmt.Fprintf(&b, "| one after another | %s | %s |\n", stats.Secs(s.sequential), stats.Secs(s.sequential/time.Duration(s.bundles)))
		fmt.Fprintf(&b, "| %d at a time (agent pool) | %s | %s |\n", s.parallel, stats.Secs(s.concurrent), stats.Secs(s.concurrent/time.Duration(s.bundles)))
		fmt.Fprintf(&b, "| speed-up | %.2f× | |\n\n", stats.Ratio(s.sequential, s.concurrent))
	}
	if r := res.rss; r != nil {
		b.WriteString("| outpost-agent process | idle (VmRSS) | peak (VmHWM) | right after the task (VmRSS) | settled again (VmRSS) | idle < 40 MiB |\n")
		b.WriteString("|---|---:|---:|---:|---:|---|\n")
		fmt.Fprintf(&b, "| %d-object task (%.1f MiB artifact) | %s | %s | %s | %s | %s |\n\n",
			r.objects, float64(r.artifact)/(1<<20), stats.MiB(r.idle), stats.MiB(r.peak), stats.MiB(r.done), stats.MiB(r.after), stats.Verdict(r.idle > 0 && r.idle < targetIdleKiB))
	}
	var details []string
	versions := []string{"kube-apiserver " + res.serverVersion}
	if res.kubectlVersion != "" {
		versions = append(versions, "kubectl "+strings.ReplaceAll(res.kubectlVersion, "\n", ", "))
	}
	if r := res.rss; r != nil && r.agentVersion != "" {
		versions = append(versions, "outpost-agent "+r.agentVersion)
	}
	details = append(details, strings.Join(versions, "; "))
	details = append(details, "executor client: "+executorLimits())
	if cfg.rtt > 0 {
		details = append(details, fmt.Sprintf("API server round trip: %v added by a loopback proxy for kubectl and the agent (-rtt)", cfg.rtt))
	}
	if a := res.apply; a != nil {
		details = append(details,
			fmt.Sprintf("large bundle: %d objects in %d files, %.1f MiB of YAML; runs: %v", a.objects, a.files, float64(a.bytes)/(1<<20), runList(a)),
			fmt.Sprintf("large bundle phase: machine %.0f%% busy (all processes: kube-apiserver, etcd, kubectl, this process, anything else), load average %s at its end", 100*a.busy, a.load))
		if a.outcome != "" {
			details = append(details, "executor's result, last no-op apply: "+a.outcome)
		}
	}
	if s := res.small; s != nil {
		details = append(details, fmt.Sprintf("small bundles phase: machine %.0f%% busy", 100*s.busy))
	}
	if r := res.rss; r != nil {
		details = append(details, fmt.Sprintf("agent process: `outpost-agent %s`; task enqueue → succeeded %s (hub dispatch, artifact download and apply); result: %s",
			strings.Join(outpostproc.RedactArgs(r.agentArgs), " "), stats.Secs(r.task), r.outcome))
	}
	details = append(details, res.notes...)
	for _, d := range details {
		fmt.Fprintf(&b, "- %s\n", d)
	}
	return b.String()
}

// passNames names the two applies of each run.
var passNames = [2]string{"fresh", "no-op"}

// runList lists every run's wall times, so the spread is visible.
func runList(a *applyResult) string {
	var parts []string
	for i := range a.kubectl[0].wall {
		p := fmt.Sprintf("#%d kubectl %s / %s", i+1, stats.Secs(a.kubectl[0].wall[i]), stats.Secs(a.kubectl[1].wall[i]))
		if i < len(a.agent[0].wall) {
			p += fmt.Sprintf(", agent %s / %s", stats.Secs(a.agent[0].wall[i]), stats.Secs(a.agent[1].wall[i]))
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ") + " (fresh / no-op)"
}

// appendResults appends a dated section with the command, machine and
// rendered tables to cfg.results.
func appendResults(ctx context.Context, cfg config, args []string, tables string) error {
	section := report.Section("manifests", args, procstat.Machine(ctx), procstat.LoadAverage(),
		"everything on 127.0.0.1: kube-apiserver and etcd (envtest), kubectl processes, the executor in the benchmark process; for memory, separate outpost-hub (SQLite) and outpost-agent processes", tables)
	return report.Append(cfg.results, section)
}
