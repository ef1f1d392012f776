// Package k8ssecret is the vault provider for references to Kubernetes
// Secrets in the agent's own namespace:
//
//	vault://k8s/<secret>/<key>
//
// resolves to the value of <key> in the Secret named <secret>. The reference
// cannot name a namespace, so a task can only read Secrets in the namespace
// the agent runs in, and only with the agent's own credentials.
//
// Each lookup is one GET of one named Secret: no list, no watch, no cache.
// The agent's Role therefore needs only "get" on secrets, which may be
// restricted with resourceNames to the Secrets tasks reference, and a
// rotated Secret is used by the next lookup.
package k8ssecret
