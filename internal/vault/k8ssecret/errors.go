package k8ssecret

// lookupError carries a message naming the Secret and key while matching a
// vault sentinel, so messages read naturally and callers still use
// errors.Is. cause, when set, is the API server's error, so callers can
// also use apierrors on it.
type lookupError struct {
	msg   string
	kind  error
	cause error
}

func (e *lookupError) Error() string { return e.msg }

func (e *lookupError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}
