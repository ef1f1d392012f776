// Package sealk8s keeps an environment's seal.Keyring in a Kubernetes
// Secret in the agent's own namespace, so the private keys never leave the
// cluster (DESIGN §5).
//
// The Secret has type outpost.dev/environment-key and carries the
// app.kubernetes.io/managed-by=outpost label. The Store creates it on first
// use, adopts the key another agent replica created first when both race,
// and rotates and retires versions with updates guarded by resourceVersion.
// It never overwrites a Secret it did not write or one that holds another
// environment's key.
package sealk8s
