package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/outposthq/outpost/bench/internal/outpostproc"
	"github.com/outposthq/outpost/internal/agentcmd"
)

// envAgentMode makes this program run as outpost-agent: for
// -agent-cpuprofile the benchmark starts itself as the agent, so that the
// agent can profile itself (outpostproc.ServeProfileSignals).
const envAgentMode = "OUTPOST_BENCH_AGENT_MODE"

// agentMain is main in agent mode: cmd/outpost-agent's main, plus the
// profile signals.
func agentMain() {
	outpostproc.ServeProfileSignals()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := agentcmd.NewRootCommand(os.Stdout, os.Stderr).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "outpost-agent:", err)
		os.Exit(1)
	}
}
