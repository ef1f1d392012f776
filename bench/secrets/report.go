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
	fmt.Fprintf(&b, "| %d updates of %d keys × %d bytes, from the start of `outpost secret set` | p50 | p99 | max | p99 < %s |\n",
		cfg.updates, cfg.keys, cfg.valueBytes, stats.Secs(targetP99))
	b.WriteString("|---|---:|---:|---:|---|\n")
	rows := []struct {
		name   string
		s      stats.Sample
		target bool
	}{
		{"command returned (sealed value stored, task queued)", res.set, false},
		{"Secret holds the new values", res.secret, false},
		{"workload's pod template patched (rollout)", res.rollout, true},
	}
	for _, r := range rows {
		verdict := ""
		if r.target {
			verdict = stats.Verdict(r.s.Quantile(0.99) < targetP99)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.name, stats.Secs(r.s.Median()), stats.Secs(r.s.Quantile(0.99)), stats.Secs(r.s.Quantile(1)), verdict)
	}
	b.WriteString("\n")
	per := func(d time.Duration) string { return stats.Secs(d / time.Duration(max(len(res.rollout), 1))) }
	fmt.Fprintf(&b, "- kube-apiserver %s; outpost-agent %s\n", res.serverVersion, orDash(res.agentVersion))
	fmt.Fprintf(&b, "- CPU per update: outpost-hub %s, outpost-agent %s; machine %.0f%% busy over the measured updates (kube-apiserver, etcd, hub, agent, this process with the CLI and the watches)\n",
		per(res.hubCPU), per(res.agentCPU), 100*res.busy)
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
	section := report.Section("secrets", args, procstat.Machine(ctx), procstat.LoadAverage(),
		"everything on 127.0.0.1: kube-apiserver and etcd (envtest), an outpost-hub process (SQLite), an outpost-agent process with --kubeconfig, and the CLI in the benchmark process; the end point is the pod template patch (no controller manager rolls pods)", tables)
	return report.Append(cfg.results, section)
}
