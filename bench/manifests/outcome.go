package main

import (
	"encoding/json"
	"fmt"
	"log/slog"

	"k8s.io/client-go/rest"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/manifests"
)

// newManifestsExecutor builds the executor as the agent does, with the
// agent's defaults for everything but the cluster and its namespace. The
// client-side rate limits are cleared so the executor applies its own
// defaults (manifests.DefaultQPS, DefaultBurst), as outpost-agent does
// without --kube-qps; the test cluster's admin config carries lower ones
// (200/400) that would cap the executor at 200 requests/s.
func newManifestsExecutor(cfg *rest.Config, log *slog.Logger) (executor.Executor, error) {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = 0, 0
	return manifests.New(manifests.Options{Config: c, AgentNamespace: agentNamespace, Logger: log})
}

// executorLimits describes the executor's client-side rate limits.
func executorLimits() string {
	return fmt.Sprintf("QPS %d, burst %d, %d requests in flight per task (the executor's defaults)",
		manifests.DefaultQPS, manifests.DefaultBurst, manifests.DefaultParallelism)
}

// outcomeSummary condenses a manifests result to its counts.
func outcomeSummary(raw json.RawMessage) string {
	var r manifests.Result
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Sprintf("unreadable result (%v)", err)
	}
	c := r.Counts
	return fmt.Sprintf("revision %d: %d created, %d configured, %d unchanged, %d pruned, %d skipped; dry-run ok=%v of %d objects",
		r.Revision, c.Created, c.Configured, c.Unchanged, c.Pruned, c.Skipped, r.DryRun.OK, r.DryRun.Objects)
}
