package agentcmd

import (
	"io"
	"log/slog"

	"github.com/outposthq/outpost/internal/agent"
	"github.com/outposthq/outpost/internal/redact"
)

// The agent's logs pass through one process redactor (DESIGN §5): it
// scrubs credentials by their shape and every secret any task attempt has
// registered, since executors log through the agent's logger long after
// the attempt that resolved a value has ended, and Helm is handed the
// same handler. The process redactor keeps every value registered with it
// for the life of the process; it grows with the number of distinct
// secrets the agent has resolved or decrypted, not with the number of
// tasks.

// newLogger returns the agent's logger, writing text or JSON lines to w
// at level, with every record passed through proc first.
func newLogger(w io.Writer, level slog.Level, json bool, proc *redact.Redactor) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if json {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(redact.NewHandler(h, proc))
}

// attemptRedactors returns agent.Options.NewRedactor for an agent whose
// logs pass through proc: each attempt gets a Redactor of its own, for
// what the attempt reports, that also registers its secrets with proc.
func attemptRedactors(proc *redact.Redactor) func() agent.Redactor {
	return func() agent.Redactor { return redact.NewChild(proc) }
}
