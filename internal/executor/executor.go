package executor

import (
	"context"
	"encoding/json"
	"errors"
	"io"
)

// Executor runs one kind of task. Execute must be idempotent (a repeat of
// the same task is harmless), must stop promptly when ctx ends, and must
// register every secret it resolves with t.Redact before the value can reach
// a result or an error. The returned result is a JSON document.
type Executor interface {
	Execute(ctx context.Context, t Task) (json.RawMessage, error)
}

// Redactor is the part of the agent's per-task redactor an executor feeds.
type Redactor interface {
	// AddSecret registers a value that must never appear in what is
	// reported; empty values are ignored.
	AddSecret(value string)
}

// ArtifactFetcher opens a task's artifact by digest ("sha256:<hex>"). The
// reader fails with an error on Read or Close if the content does not match
// the digest, so callers must read to EOF and check Close before use.
type ArtifactFetcher interface {
	Fetch(ctx context.Context, digest string) (io.ReadCloser, error)
}

// Task is what an executor is handed for one attempt.
type Task struct {
	ID      string
	Kind    string
	Spec    json.RawMessage
	Attempt int64
	// Artifacts lists the digests the task declared.
	Artifacts []string
	Fetcher   ArtifactFetcher
	Redact    Redactor
}

// TerminalError marks a failure that no retry can fix (invalid spec,
// permission denied, missing secret). The hub fails the task at once.
type TerminalError struct {
	Err error
}

func (e *TerminalError) Error() string { return e.Err.Error() }

func (e *TerminalError) Unwrap() error { return e.Err }

// Terminal wraps err as a TerminalError; nil stays nil.
func Terminal(err error) error {
	if err == nil {
		return nil
	}
	return &TerminalError{Err: err}
}

// IsTerminal reports whether err or anything it wraps is a TerminalError.
func IsTerminal(err error) bool {
	var te *TerminalError
	return errors.As(err, &te)
}
