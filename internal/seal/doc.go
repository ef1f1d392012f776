// Package seal holds an environment's age (X25519) keys and seals and opens
// secret values with them (DESIGN §5: the hub never holds a plaintext
// secret).
//
// Each environment ("tenant/env") has its own Keyring of versioned
// KeyPairs. The agent generates and keeps the private keys; the hub stores
// only the PublicKey, and the CLI and console Seal values to it. A Sealed
// value names its environment, secret, key version and recipient
// fingerprint, and its encrypted envelope repeats the environment, secret
// and key version, so Open rejects a ciphertext moved to another
// environment or secret as well as one whose bytes were changed.
//
// Rotation adds a newer version to the Keyring: new values are sealed to
// the newest key, older versions still open until they are retired.
//
// Go cannot promise that secret bytes leave no copy in memory; Wipe and the
// buffers this package zeroes make a best effort to shorten their life.
package seal
