// Package hub is Outpost's control plane service: the agent API
// (enrollment, token refresh, wake-ups, claims, leases, reports, artifact
// downloads), the operator API (environments, bootstrap tokens, agents,
// tasks, audit, artifact uploads), the background loops that expire leases
// and collect garbage, and the Prometheus metrics. It never runs a task: it
// stores desired work and hands it to agents through the store.
package hub
