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
// agent's defaults for everything but the cluster and its namespace.
func newManifestsExecutor(cfg *rest.Config, log *slog.Logger) (executor.Executor, error) {
	return manifests.New(manifests.Options{Config: rest.CopyConfig(cfg), AgentNamespace: agentNamespace, Logger: log})
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
