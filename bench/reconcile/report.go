package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/outposthq/outpost/bench/internal/procstat"
	"github.com/outposthq/outpost/bench/internal/report"
	"github.com/outposthq/outpost/bench/internal/stats"
)

// render writes the results as a markdown table and the details it cannot
// hold.
func render(cfg config, res *results) string {
	var b strings.Builder
	row := func(name, value, target string) { fmt.Fprintf(&b, "| %s | %s | %s |\n", name, value, target) }
	since := func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return stats.Secs(t.Sub(res.restartAt))
	}
	fmt.Fprintf(&b, "| %d releases × 3 objects (ConfigMap, Deployment, headless Service) in %d namespaces, one least-privilege agent | result | target |\n",
		cfg.releases, cfg.namespaces)
	b.WriteString("|---|---:|---|\n")
	row(fmt.Sprintf("apply: %d ApplyRelease calls (%d in flight) returned", cfg.releases, cfg.applyConcurrency), stats.Secs(res.applyCalls), "")
	row("apply: … every release applied (ListReleases: applied revision 1)", stats.Secs(res.applied), "")
	row("apply: … every release synced by the reconciler", stats.Secs(res.reconciled), "")
	row("**first full sync after a restart: process start → every release synced**", "**"+since(res.marks.allSynced)+"**", "")
	row("… process start → leader Lease held", since(res.marks.leading), "")
	row("… process start → desired state loaded from the hub", since(res.marks.desiredLoaded), "")
	loadedToSynced := "—"
	if !res.marks.desiredLoaded.IsZero() {
		loadedToSynced = stats.Secs(res.marks.allSynced.Sub(res.marks.desiredLoaded))
	}
	row("… desired state loaded → every release synced", loadedToSynced, "")
	row("agent CPU time from its start to the first full sync; RSS then (peak)",
		fmt.Sprintf("%s; %s (%s)", stats.Secs(res.syncCPU), stats.MiB(res.syncRSS.RSS), stats.MiB(res.syncRSS.HWM)), "")
	row("drift audit events over the restart and first sync (false drift)", fmt.Sprint(res.restartDrift.total()), "0: "+stats.Verdict(res.restartDrift.total() == 0))
	e := res.edits
	row(fmt.Sprintf("drift correction, edit returned → watch sees the desired value, %d edits: p50", len(e.all)), stats.Secs(e.all.Median()), "")
	row("… p90", stats.Secs(e.all.P90()), "")
	row("… **p99**", "**"+stats.Secs(e.all.Quantile(0.99))+"**", "< "+stats.Secs(targetCorrectionP99)+": "+stats.Verdict(len(e.all) > 0 && e.all.Quantile(0.99) < targetCorrectionP99))
	row("… max", stats.Secs(e.all.Quantile(1)), "")
	row(fmt.Sprintf("edits not undone within %s", stats.Secs(correctionTimeout)), fmt.Sprint(len(e.misses)), "0: "+stats.Verdict(len(e.misses) == 0))
	row("audit events of the edits: drift_corrected / drift_detected", fmt.Sprintf("%d / %d", res.editDrift.corrected, res.editDrift.detected),
		fmt.Sprintf("%d / 0: %s", cfg.edits, stats.Verdict(res.editDrift.corrected == cfg.edits && res.editDrift.detected == 0)))
	in := res.idle
	row(fmt.Sprintf("**idle %s: drift audit events** (detected + corrected)", in.window), fmt.Sprintf("**%d**", in.drift.total()), "0: "+stats.Verdict(in.drift.total() == 0))
	row("idle: **agent CPU**, % of one core", fmt.Sprintf("**%.2f %%**", in.agentCPU), fmt.Sprintf("< %.0f %%: %s", targetIdleCPU, stats.Verdict(in.agentCPU < targetIdleCPU)))
	row(fmt.Sprintf("idle: agent CPU over its busiest %s", stats.Secs(peakWindow)), fmt.Sprintf("%.1f %%", in.peakCPU), "")
	row("idle: agent RSS at the end (max sampled)", fmt.Sprintf("%s (%s)", stats.MiB(in.rssLast), stats.MiB(in.rssMax)), "")
	row("idle: release syncs the agent logged (periodic full resync)", fmt.Sprintf("%d (%.1f × %d)", in.syncs, float64(in.syncs)/float64(cfg.releases), cfg.releases), "")
	row("idle: first → last release sync logged (a full resync's length)", stats.Secs(in.syncSpan), "")
	row("idle: client-go \"client-side throttling\" log lines of the agent (it logs only waits of about a second or more)", fmt.Sprint(in.throttled), "")
	b.WriteString("\n")

	resync := "the agent's default 10m"
	if cfg.resync > 0 {
		resync = cfg.resync.String()
	}
	fmt.Fprintf(&b, "- kube-apiserver %s; outpost-agent %s; agent command line `outpost-agent %s`\n",
		res.serverVersion, orDash(res.agentVersion), strings.Join(res.agentArgs, " "))
	fmt.Fprintf(&b, "- full resync period: %s; the agent was restarted (SIGTERM, then the same command line without the bootstrap token) before the measured first sync\n", resync)
	for _, k := range []editKind{editImage, editConfig} {
		s := e.byKind[k]
		fmt.Fprintf(&b, "- correction of a %s, %d edits: p50 %s, p99 %s, max %s\n", k, len(s), stats.Secs(s.Median()), stats.Secs(s.Quantile(0.99)), stats.Secs(s.Quantile(1)))
	}
	for _, m := range e.misses {
		fmt.Fprintf(&b, "- miss: %s\n", m)
	}
	fmt.Fprintf(&b, "- idle window: drift_detected %d, drift_corrected %d, in_sync %d audit events; agent log: %d \"drift corrected\", %d \"drift detected\"; outpost-hub CPU %.2f %% of one core; machine %.0f%% busy (kube-apiserver, etcd, hub, agent, this process)\n",
		in.drift.detected, in.drift.corrected, in.drift.inSync, in.corrected, in.detected, in.hubCPU, 100*in.busy)
	fmt.Fprintf(&b, "- restart and first sync: drift_detected %d, drift_corrected %d, in_sync %d audit events\n",
		res.restartDrift.detected, res.restartDrift.corrected, res.restartDrift.inSync)
	b.WriteString("- peers: Argo CD and Flux poll every 3–10 minutes (Argo CD's default reconciliation period is 3 min; Flux's interval is set per object, commonly 5–10 min); no side-by-side peer run here\n")
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// appendResults appends the run to cfg.results under a dated heading.
func appendResults(ctx context.Context, cfg config, args []string, tables string) error {
	machine := procstat.Machine(ctx) + " (2 shared cores: other sessions build and test in the same checkout)"
	section := report.Section("reconcile", args, machine, procstat.LoadAverage(),
		"everything on 127.0.0.1: kube-apiserver and etcd (envtest, no controller manager), an outpost-hub process (SQLite), one outpost-agent process with a least-privilege kubeconfig (Roles in outpost-system and the target namespaces only); releases applied through OperatorService.ApplyRelease, edits and watches by this process as a cluster admin", tables)
	return report.Append(cfg.results, section)
}
