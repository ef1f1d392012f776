package seal

import "errors"

// Sentinel errors callers branch on with errors.Is. Each is wrapped with a
// message naming what it concerns; none of them is worth retrying as is.
var (
	// ErrWrongEnvironment reports a sealed value, key or key store that
	// belongs to another environment than the one asked for.
	ErrWrongEnvironment = errors.New("seal: sealed for another environment")
	// ErrTampered reports a sealed value that is not authentic: changed
	// ciphertext bytes, or an envelope that names another environment,
	// secret or key version than its outer metadata (a ciphertext moved
	// between secrets).
	ErrTampered = errors.New("seal: sealed value is tampered or malformed")
	// ErrUnknownKey reports a key version that the keyring does not hold
	// (never created, or retired), or a value sealed to another key.
	// Re-seal the value to the environment's current public key.
	ErrUnknownKey = errors.New("seal: unknown or retired key")
	// ErrInvalidValues reports values that cannot be sealed: too many keys,
	// too large in total, or a key name that is not a valid Kubernetes
	// Secret data key.
	ErrInvalidValues = errors.New("seal: invalid values")
	// ErrInvalidKey reports a malformed key pair, public key, environment
	// ID, secret name or key version.
	ErrInvalidKey = errors.New("seal: invalid key")
)
