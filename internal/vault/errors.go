package vault

import "errors"

// Sentinel errors callers branch on with errors.Is. Each is wrapped with the
// reference it concerns.
var (
	// ErrMalformedRef reports a reference or placeholder that does not follow
	// the vault://<provider>/<path>/<key>[/vN] grammar.
	ErrMalformedRef = errors.New("vault: malformed reference")
	// ErrUnknownProvider reports a reference to a provider the resolver was
	// not configured with.
	ErrUnknownProvider = errors.New("unknown provider")
	// ErrNotFound reports a path or key that the provider does not hold.
	ErrNotFound = errors.New("not found")
	// ErrVersionUnsupported reports a pinned version (/vN) on a provider that
	// keeps no versions.
	ErrVersionUnsupported = errors.New("versions are not supported")
	// ErrForbidden reports a backend that refused the agent access to a
	// path. Trying again does not help until an operator grants the
	// agent's identity the permission the error names.
	ErrForbidden = errors.New("access forbidden")
	// ErrVaultFile reports a local vault file that cannot be used: missing,
	// too large or not the expected JSON shape. It may be transient while the
	// file is being rewritten.
	ErrVaultFile = errors.New("vault file unusable")
)

// lookupError carries a message naming what was looked up while matching a
// sentinel, so messages read naturally and callers still use errors.Is.
type lookupError struct {
	msg  string
	kind error
}

func (e *lookupError) Error() string { return e.msg }

func (e *lookupError) Unwrap() error { return e.kind }
