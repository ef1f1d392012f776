package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// Marker replaces every redacted value.
const Marker = "[REDACTED]"

// MinSecretLength is the shortest value AddSecret registers. Shorter values
// ("1", "yes", "80") occur in ordinary text so often that replacing them
// would mangle every report while hiding almost nothing: a secret that short
// can be guessed anyway.
const MinSecretLength = 4

// maxPasses bounds how often String re-applies the replacements. A second
// pass is needed when a marker and the text next to it happen to spell a
// secret again; if that keeps happening the whole text is withheld.
const maxPasses = 4

// Redactor removes registered secrets, and credentials recognised by their
// shape (see scrubPatterns), from text. The zero value is ready to use; New
// is the conventional constructor. A Redactor is safe for
// concurrent use, and secrets can be added while others redact.
//
// A form that is itself part of Marker (the secret "DACT", or a short secret
// whose base64 form reads "REDA") cannot be hidden, since every redaction
// writes the marker; such forms are not replaced.
type Redactor struct {
	mu      sync.Mutex
	secrets map[string]struct{}
	// parent, when set, gets every secret this Redactor gets.
	parent *Redactor
	// state is replaced wholesale on AddSecret so readers never lock.
	state atomic.Pointer[state]
}

// state is an immutable snapshot of what to replace.
type state struct {
	replacer *strings.Replacer
	// patterns lists every form replaced, longest first.
	patterns []string
}

// New returns an empty Redactor.
func New() *Redactor { return &Redactor{} }

// NewChild returns an empty Redactor whose AddSecret also registers the
// value with parent, so parent redacts everything any of its children was
// told (the agent's process redactor, which scrubs its logs, is the parent
// of each attempt's). A child does not redact its parent's secrets, and
// parent keeps its children's secrets after they are gone: it grows with
// the number of distinct secrets ever registered.
func NewChild(parent *Redactor) *Redactor { return &Redactor{parent: parent} }

// AddSecret registers value so that it, and its JSON-escaped and base64
// forms, never appear in what the Redactor returns. Values shorter than
// MinSecretLength bytes are ignored; see MinSecretLength for why.
func (r *Redactor) AddSecret(value string) {
	if len(value) < MinSecretLength {
		return
	}
	if r.parent != nil {
		r.parent.AddSecret(value)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.secrets[value]; ok {
		return
	}
	if r.secrets == nil {
		r.secrets = make(map[string]struct{})
	}
	r.secrets[value] = struct{}{}

	set := make(map[string]struct{})
	for s := range r.secrets {
		for _, p := range variants(s) {
			// A pattern inside the marker would match every marker written.
			if len(p) > 0 && !strings.Contains(Marker, p) {
				set[p] = struct{}{}
			}
		}
	}
	patterns := make([]string, 0, len(set))
	for p := range set {
		patterns = append(patterns, p)
	}
	// strings.Replacer tries patterns in argument order at each position, so
	// longest first makes the widest form win over a form it contains.
	slices.SortFunc(patterns, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	pairs := make([]string, 0, 2*len(patterns))
	for _, p := range patterns {
		pairs = append(pairs, p, Marker)
	}
	r.state.Store(&state{replacer: strings.NewReplacer(pairs...), patterns: patterns})
}

// String returns s with every registered secret replaced by Marker, and
// the credentials recognised by their shape (see patterns.go: bearer and
// basic credentials, JWTs, Outpost tokens, credential header values) too,
// whether or not any secret is registered.
func (r *Redactor) String(s string) string {
	st := r.state.Load()
	for range maxPasses {
		out := scrubPatterns(st.replace(s))
		if out == s {
			return s
		}
		s = out
	}
	if scrubPatterns(st.replace(s)) == s {
		return s
	}
	return Marker
}

// replace replaces the registered secrets once; a nil state has none.
func (st *state) replace(s string) string {
	if st == nil || len(st.patterns) == 0 {
		return s
	}
	return st.replacer.Replace(s)
}

// Bytes is String for a byte slice. The result is a new slice unless
// nothing was replaced.
func (r *Redactor) Bytes(b []byte) []byte {
	if !r.state.Load().mayHold(b) && !mayHoldPattern(b) {
		return b
	}
	out := r.String(string(b))
	if out == string(b) {
		return b
	}
	return []byte(out)
}

// mayHold reports whether b holds a registered secret in one of its forms.
func (st *state) mayHold(b []byte) bool {
	if st == nil {
		return false
	}
	for _, p := range st.patterns {
		if bytes.Contains(b, []byte(p)) {
			return true
		}
	}
	return false
}

// TrimPartial removes from the end of s a fragment that could be the start
// of a registered secret. Use it on redacted text that was cut short (a
// truncated response body), where a secret straddling the cut would
// otherwise leave its first bytes behind.
func (r *Redactor) TrimPartial(s string) string {
	st := r.state.Load()
	if st == nil {
		return s
	}
	cut := len(s)
	for _, p := range st.patterns {
		// Longest proper prefix of p that s ends with.
		for n := min(len(p)-1, len(s)); n > 0; n-- {
			if strings.HasSuffix(s, p[:n]) {
				cut = min(cut, len(s)-n)
				break
			}
		}
	}
	return s[:cut]
}

// variants returns the forms of secret that are replaced: the value itself,
// its JSON string escapes as common encoders write them, and standard base64
// both on its own and at each alignment inside a longer encoded text.
func variants(secret string) []string {
	out := []string{secret}
	out = append(out, jsonForms(secret)...)
	out = append(out, base64.StdEncoding.EncodeToString([]byte(secret)))
	out = append(out, base64Cores(secret)...)
	return out
}

// jsonForms returns secret escaped as the body of a JSON string by Go (with
// and without HTML escaping), by encoders that escape '/', and by encoders
// that escape everything outside ASCII (Python's default).
func jsonForms(secret string) []string {
	var forms []string
	for _, html := range []bool{true, false} {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(html)
		if err := enc.Encode(secret); err != nil {
			continue
		}
		quoted := strings.TrimSuffix(buf.String(), "\n")
		forms = append(forms, quoted[1:len(quoted)-1])
	}
	plain := forms[len(forms)-1]
	forms = append(forms, strings.ReplaceAll(plain, "/", `\/`))
	var ascii strings.Builder
	for _, c := range plain {
		switch {
		case c < utf8.RuneSelf:
			ascii.WriteRune(c)
		case c > 0xFFFF:
			c -= 0x10000
			fmt.Fprintf(&ascii, `\u%04x\u%04x`, 0xD800+(c>>10), 0xDC00+(c&0x3FF))
		default:
			fmt.Fprintf(&ascii, `\u%04x`, c)
		}
	}
	forms = append(forms, ascii.String())
	return forms
}

// base64Cores returns, for each of the three byte alignments a secret can
// have inside a longer text, the base64 characters that depend on the secret
// alone. Any base64 text that contains the secret contains one of them.
func base64Cores(secret string) []string {
	cores := make([]string, 0, 3)
	for shift := range 3 {
		buf := make([]byte, shift+len(secret))
		copy(buf[shift:], secret)
		enc := base64.RawStdEncoding.EncodeToString(buf)
		// Character i covers bits [6i, 6i+6); keep those inside the secret.
		start := (8*shift + 5) / 6
		end := 8 * len(buf) / 6
		if end > start {
			cores = append(cores, enc[start:end])
		}
	}
	return cores
}
