package httpcall

import "errors"

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrUnexpectedStatus reports a response whose status is not a success
	// for the spec. It is retryable for 5xx, 429 and 408, terminal otherwise.
	ErrUnexpectedStatus = errors.New("unexpected status")
	// ErrTooManyRedirects reports a chain of more than maxRedirects.
	ErrTooManyRedirects = errors.New("too many redirects")
	// ErrSecretBodyRedirect reports a 307/308 redirect that would resend a
	// body holding a secret to another origin.
	ErrSecretBodyRedirect = errors.New("refusing to resend a body holding a secret to another origin")
	// ErrInvalidSecret reports a resolved value that cannot be sent as a
	// header value (it holds a control character).
	ErrInvalidSecret = errors.New("resolved value cannot be sent")
)

// redactedError shows a scrubbed message while keeping the chain it wraps
// for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }

func (e *redactedError) Unwrap() error { return e.err }
