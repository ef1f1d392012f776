// Package agent is the runtime of outpost-agent: it enrolls with a
// bootstrap token, keeps its Ed25519 identity and a fresh access token,
// holds a Watch stream to the hub (falling back to long-poll where a proxy
// buffers streams), claims tasks into a bounded worker pool, serializes
// tasks sharing a conflict key, renews leases while executors run, and
// reports redacted results until the hub acknowledges them. It is a client
// of the hub API and never imports the hub or the store.
package agent
