package terraform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Caps on what the executor reads of the CLI's machine-readable UI. The
// stream is read to its end whatever its size, so that the CLI never
// blocks on a full pipe; past a cap it is drained, not parsed.
const (
	// maxStreamLine caps one message. A module's outputs arrive as one
	// message, so this is also the cap on their size.
	maxStreamLine = 16 << 20
	// maxStreamBytes caps a command's whole stream: some hundred bytes a
	// resource and a few messages each, far beyond any real module.
	maxStreamBytes = 1 << 30
)

// Messages of the CLI's machine-readable UI the executor reads, as
// OpenTofu's internal/command/views/json defines them (UI version 1.2).
const (
	msgDiagnostic    = "diagnostic"
	msgPlannedChange = "planned_change"
	msgChangeSummary = "change_summary"
	msgOutputs       = "outputs"
	severityError    = "error"
)

// errStream reports a stream the executor could not read whole.
var errStream = errors.New("machine-readable output")

// uiMessage is the part of one message of the machine-readable UI the
// executor reads. Sensitive output values are never in it: the CLI
// leaves them out.
type uiMessage struct {
	Type       string                  `json:"type"`
	Diagnostic *uiDiagnostic           `json:"diagnostic"`
	Change     *uiChange               `json:"change"`
	Changes    *uiChangeSummary        `json:"changes"`
	Outputs    map[string]outputStream `json:"outputs"`
}

// uiDiagnostic is a diagnostic message's diagnostic.
type uiDiagnostic struct {
	Severity string `json:"severity"`
	Summary  string `json:"summary"`
	Detail   string `json:"detail"`
	Range    *struct {
		Filename string `json:"filename"`
		Start    struct {
			Line int `json:"line"`
		} `json:"start"`
	} `json:"range"`
	Snippet *struct {
		Context *string `json:"context"`
		Values  []struct {
			Traversal string `json:"traversal"`
			Statement string `json:"statement"`
		} `json:"values"`
	} `json:"snippet"`
}

// uiChange is a planned_change message's change.
type uiChange struct {
	Resource struct {
		Addr         string          `json:"addr"`
		Module       string          `json:"module"`
		Resource     string          `json:"resource"`
		ResourceType string          `json:"resource_type"`
		ResourceName string          `json:"resource_name"`
		ResourceKey  json.RawMessage `json:"resource_key"`
	} `json:"resource"`
	Action string `json:"action"`
}

// uiChangeSummary is a change_summary message's counts.
type uiChangeSummary struct {
	Add       int    `json:"add"`
	Change    int    `json:"change"`
	Remove    int    `json:"remove"`
	Operation string `json:"operation"`
}

// outputStream is one output of an outputs message. Value is absent for
// a sensitive output.
type outputStream struct {
	Sensitive bool            `json:"sensitive"`
	Value     json.RawMessage `json:"value"`
}

// uiStream reads the machine-readable UI (-json) of one command: one JSON
// message a line, given to handle, and the error diagnostics kept as text
// in the CLI's human format, each redacted before it is kept, so that
// classify.go and lock.go read them as they read the CLI's stderr. A
// write never fails: what went wrong is kept for finish.
type uiStream struct {
	redact func(string) string
	handle func(*uiMessage)

	line []byte
	long bool
	read int64
	err  error

	diags   strings.Builder
	omitted int
}

func newUIStream(redact func(string) string, handle func(*uiMessage)) *uiStream {
	return &uiStream{redact: redact, handle: handle}
}

// Write splits p into lines and reads each complete one.
func (s *uiStream) Write(p []byte) (int, error) {
	n := len(p)
	s.read += int64(n)
	if s.read > maxStreamBytes && s.err == nil {
		s.err = fmt.Errorf("%w: over %d bytes", errStream, maxStreamBytes)
	}
	if s.stopped() {
		s.line = nil
		return n, nil
	}
	for len(p) > 0 {
		chunk, rest, complete := bytes.Cut(p, []byte{'\n'})
		if !s.long && len(s.line)+len(chunk) <= maxStreamLine {
			s.line = append(s.line, chunk...)
		} else {
			s.long = true
			s.line = s.line[:0]
		}
		if !complete {
			break
		}
		s.endLine()
		if s.stopped() {
			break
		}
		p = rest
	}
	return n, nil
}

// stopped reports whether the stream is only drained: a failed write
// would leave the CLI blocked on a full pipe.
func (s *uiStream) stopped() bool { return s.err != nil }

func (s *uiStream) endLine() {
	if s.long {
		s.err = fmt.Errorf("%w: a message over %d bytes", errStream, maxStreamLine)
	} else {
		s.message(s.line)
	}
	clear(s.line)
	s.line = s.line[:0]
	s.long = false
}

// message reads one line. Lines that are not messages (the CLI may print
// others) are skipped.
func (s *uiStream) message(line []byte) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return
	}
	var m uiMessage
	if json.Unmarshal(line, &m) != nil {
		return
	}
	if m.Type == msgDiagnostic && m.Diagnostic != nil {
		s.diagnostic(m.Diagnostic)
		return
	}
	if s.handle != nil {
		s.handle(&m)
	}
}

// diagnostic keeps an error diagnostic as the CLI prints it with
// -no-color, up to maxErrorBytes of them. Warnings are not kept, as the
// CLI prints them on stdout.
func (s *uiStream) diagnostic(d *uiDiagnostic) {
	if d.Severity != severityError {
		return
	}
	var b strings.Builder
	b.WriteString("Error: " + d.Summary + "\n")
	if d.Range != nil {
		fmt.Fprintf(&b, "\n  on %s line %d", d.Range.Filename, d.Range.Start.Line)
		if d.Snippet != nil && d.Snippet.Context != nil {
			b.WriteString(", in " + *d.Snippet.Context)
		}
		b.WriteString(":\n")
	}
	if d.Snippet != nil {
		for _, v := range d.Snippet.Values {
			b.WriteString("    " + v.Traversal + " " + v.Statement + "\n")
		}
	}
	if d.Detail != "" {
		b.WriteString("\n" + d.Detail + "\n")
	}
	// Redacted first, so that a cut never leaves part of a secret.
	text := s.redact(b.String())
	room := maxErrorBytes - s.diags.Len()
	switch {
	case room <= 0:
		s.omitted++
		return
	case len(text) > room:
		text = text[:room] + "… (truncated)\n"
	}
	s.diags.WriteString(text + "\n")
}

// finish reads a last line without newline and reports whether the whole
// stream was read.
func (s *uiStream) finish() error {
	if s.err == nil && (len(s.line) > 0 || s.long) {
		s.endLine()
	}
	return s.err
}

// failed returns the error of a failed command: the CLI's own (its exit
// status and stderr) followed by the stream's error diagnostics, which
// with -json the CLI writes to stdout only.
func (s *uiStream) failed(err error) error {
	if s.diags.Len() == 0 {
		return err
	}
	text := strings.TrimSpace(s.diags.String())
	if s.omitted > 0 {
		text += fmt.Sprintf("\n(%d more errors)", s.omitted)
	}
	return fmt.Errorf("%w\n%s", err, text)
}
