// Package auth holds Outpost's identity primitives: opaque operator and
// bootstrap tokens (stored only as hashes), the agent's Ed25519 proofs of
// possession over hub nonces, and the short-lived EdDSA access tokens the
// hub issues to agents and verifies on every call.
package auth
