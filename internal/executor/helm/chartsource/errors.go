package chartsource

import (
	"context"
	"errors"

	"github.com/outposthq/outpost/internal/redact"
)

// Sentinel errors callers branch on with errors.Is. IsPermanent tells which
// of them no retry can fix.
var (
	// ErrInvalidRequest reports a request that cannot be fetched as given:
	// a malformed or unsupported repository URL, a URL carrying
	// credentials, a malformed version constraint or CA bundle.
	ErrInvalidRequest = errors.New("invalid chart request")
	// ErrAuth reports a repository that refused the credentials (401 or
	// 403), or demanded some when none were given.
	ErrAuth = errors.New("authentication failed")
	// ErrNotFound reports a repository, chart or chart version that does
	// not exist.
	ErrNotFound = errors.New("not found")
	// ErrNoMatchingVersion reports a version or constraint that no
	// published version satisfies.
	ErrNoMatchingVersion = errors.New("no version matches")
	// ErrTooLarge reports an index or archive larger than its cap.
	ErrTooLarge = errors.New("larger than the limit")
	// ErrDigestMismatch reports an archive whose digest differs from the
	// one the repository published. It may be transient (a repository in
	// the middle of an update), so it is not permanent.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrBadRepository reports a repository that answered with something
	// that is not a valid index or chart.
	ErrBadRepository = errors.New("invalid repository content")
)

// IsPermanent reports whether err from Fetch cannot be fixed by trying
// again with the same request: an invalid request, refused credentials, a
// missing chart or version, an oversized or malformed answer. Network
// errors, 5xx answers, digest mismatches and a cancelled context may be
// transient.
func IsPermanent(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return errors.Is(err, ErrInvalidRequest) || errors.Is(err, ErrAuth) ||
		errors.Is(err, ErrNotFound) || errors.Is(err, ErrNoMatchingVersion) ||
		errors.Is(err, ErrTooLarge) || errors.Is(err, ErrBadRepository)
}

// redactedError shows a scrubbed message while keeping the chain it wraps
// for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }

func (e *redactedError) Unwrap() error { return e.err }

// scrub removes the request's credentials from err's text: a server can
// echo what it was sent into an error body that ends up in a message.
func scrub(red *redact.Redactor, err error) error {
	if err == nil {
		return nil
	}
	return &redactedError{msg: red.String(err.Error()), err: err}
}
