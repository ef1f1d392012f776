package reconcile

import "errors"

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrInvalidOptions reports Options that Validate rejects.
	ErrInvalidOptions = errors.New("reconcile: invalid options")
	// ErrInvalidRelease reports a Release that Validate rejects; the
	// reconciler skips it and logs why.
	ErrInvalidRelease = errors.New("reconcile: invalid release")
	// ErrStarted reports a Start while another Start of the same
	// Reconciler runs.
	ErrStarted = errors.New("reconcile: already started")
	// ErrNoOwnedFields reports a dry run or apply response without the
	// managedFields entry of the release's field manager.
	ErrNoOwnedFields = errors.New("reconcile: no owned fields")
	// ErrDesiredState reports a desired state that cannot be computed: a
	// bundle that does not decode or resolve, or a Helm release without a
	// deployed revision.
	ErrDesiredState = errors.New("reconcile: desired state")
)
