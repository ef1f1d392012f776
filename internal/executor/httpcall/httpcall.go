package httpcall

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/redact"
	"github.com/outposthq/outpost/internal/taskspec"
	"github.com/outposthq/outpost/internal/vault"
)

// Log field names.
const (
	logTask       = "task"
	logMethod     = "method"
	logHost       = "host"
	logStatus     = "status"
	logDuration   = "duration"
	logTruncated  = "truncated"
	logResolved   = "secrets_resolved"
	excerptLength = 512
)

// Executor runs http tasks. It is safe for concurrent use; each Execute
// builds its own redirect policy and redactor.
type Executor struct {
	client      *http.Client
	vault       SecretResolver
	log         *slog.Logger
	maxResponse int64
}

var _ executor.Executor = (*Executor)(nil)

// New returns an Executor.
func New(opts Options) (*Executor, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Executor{client: opts.Client, vault: opts.Vault, log: opts.Logger, maxResponse: opts.MaxResponseBytes}, nil
}

// Result is the JSON document an http task reports. Headers and body are
// redacted: credential headers are replaced and every resolved secret is
// removed, in any of the forms the redactor knows.
type Result struct {
	// Status is the final response's status code.
	Status int `json:"status"`
	// Headers are the final response's headers.
	Headers http.Header `json:"headers"`
	// Body is the response body when it is UTF-8 text.
	Body string `json:"body"`
	// BodyBase64 is the response body, standard base64, when it is not
	// UTF-8; Body is then empty.
	BodyBase64 string `json:"body_base64,omitempty"`
	// Truncated says the body was longer than the response cap and was cut.
	Truncated bool `json:"truncated"`
	// DurationMS is how long the call took, redirects included.
	DurationMS int64 `json:"duration_ms"`
}

// prepared is a request whose references are resolved.
type prepared struct {
	header http.Header
	body   string
	policy *redirectPolicy
	// resolved counts the references resolved, for the log.
	resolved int
}

// Execute sends the request the spec describes and reports the response.
//
// An invalid spec, a reference that cannot be resolved, a redirect that
// would leak a secret and a 4xx status are terminal; network errors,
// timeouts, 5xx, 429 and 408 may be retried. On an unexpected status the
// result is returned along with the error, so the report shows the
// (redacted) response.
func (e *Executor) Execute(ctx context.Context, t executor.Task) (json.RawMessage, error) {
	var spec taskspec.HTTP
	if err := taskspec.Decode(t.Spec, &spec); err != nil {
		return nil, executor.Terminal(fmt.Errorf("http: %w", err))
	}
	// The executor keeps a redactor of its own for what it returns, so its
	// output is clean whatever the caller does with t.Redact.
	red := redact.New()
	sink := secretSink{red, t.Redact}

	p, err := e.resolve(ctx, &spec, sink)
	if err != nil {
		return nil, scrub(red, err)
	}
	u, err := url.Parse(spec.URL)
	if err != nil {
		// Validate parsed it already; this is only for completeness.
		return nil, executor.Terminal(fmt.Errorf("http: url: %w", err))
	}
	target := spec.Method + " " + red.String(u.Redacted())

	callCtx, cancel := context.WithTimeout(ctx, time.Duration(spec.Timeout())*time.Second)
	defer cancel()
	var body io.Reader
	if p.body != "" {
		body = strings.NewReader(p.body)
	}
	req, err := http.NewRequestWithContext(callCtx, spec.Method, spec.URL, body)
	if err != nil {
		return nil, scrub(red, executor.Terminal(fmt.Errorf("http: %s: %w", target, err)))
	}
	req.Header = p.header
	client := *e.client
	client.CheckRedirect = p.policy.check

	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return nil, scrub(red, e.sendError(ctx, callCtx, target, spec.Timeout(), err))
	}
	defer func() { _ = resp.Body.Close() }()

	limit := e.maxResponse
	if spec.MaxResponseBytes > 0 {
		limit = spec.MaxResponseBytes
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, scrub(red, e.sendError(ctx, callCtx, target, spec.Timeout(), fmt.Errorf("reading response: %w", err)))
	}
	elapsed := time.Since(start)
	truncated := int64(len(raw)) > limit
	if truncated {
		raw = raw[:limit]
	}
	bodyText := red.Bytes(raw)
	if truncated {
		bodyText = trimIncompleteRune([]byte(red.TrimPartial(string(bodyText))))
	}
	res := Result{
		Status:     resp.StatusCode,
		Headers:    red.Headers(resp.Header),
		Truncated:  truncated,
		DurationMS: elapsed.Milliseconds(),
	}
	if utf8.Valid(bodyText) {
		res.Body = string(bodyText)
	} else {
		res.BodyBase64 = base64.StdEncoding.EncodeToString(bodyText)
	}
	doc := encodeResult(red, res)

	e.log.LogAttrs(ctx, slog.LevelInfo, "http call done",
		slog.String(logTask, t.ID), slog.String(logMethod, spec.Method), slog.String(logHost, red.String(u.Host)),
		slog.Int(logStatus, resp.StatusCode), slog.Duration(logDuration, elapsed), slog.Bool(logTruncated, truncated),
		slog.Int(logResolved, p.resolved))

	if accepted(&spec, resp.StatusCode) {
		return doc, nil
	}
	excerpt := string(bodyText)
	if res.BodyBase64 != "" {
		excerpt = "(binary body)"
	} else if len(excerpt) > excerptLength {
		excerpt = string(trimIncompleteRune([]byte(red.TrimPartial(excerpt[:excerptLength])))) + "..."
	}
	err = fmt.Errorf("http: %s: %w %d %s: %q", target, ErrUnexpectedStatus, resp.StatusCode, http.StatusText(resp.StatusCode), excerpt)
	if !retryableStatus(resp.StatusCode) {
		err = executor.Terminal(err)
	}
	return doc, scrub(red, err)
}

// resolve expands every reference in header values and the body, registering
// each value with the redactors as it arrives. Nothing is sent until all are
// resolved.
func (e *Executor) resolve(ctx context.Context, spec *taskspec.HTTP, sink secretSink) (*prepared, error) {
	p := &prepared{
		header: make(http.Header, len(spec.Headers)),
		policy: &redirectPolicy{follow: spec.Follow(), secretHeaders: map[string]bool{}},
	}
	names := make([]string, 0, len(spec.Headers))
	for name := range spec.Headers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		found := false
		v, err := vault.Expand(ctx, spec.Headers[name], func(ctx context.Context, ref vault.Ref) (string, error) {
			found = true
			p.resolved++
			return e.lookup(ctx, ref, sink)
		})
		if err != nil {
			return nil, classifyVault(fmt.Errorf("http: header %q: %w", name, err))
		}
		if !taskspec.ValidHeaderValue(v) {
			return nil, executor.Terminal(fmt.Errorf("http: header %q: %w: the secret holds a control character", name, ErrInvalidSecret))
		}
		canonical := http.CanonicalHeaderKey(name)
		if found {
			p.policy.secretHeaders[canonical] = true
		}
		p.header[canonical] = []string{v}
	}
	body, err := vault.Expand(ctx, spec.Body, func(ctx context.Context, ref vault.Ref) (string, error) {
		p.policy.secretBody = true
		p.resolved++
		return e.lookup(ctx, ref, sink)
	})
	if err != nil {
		return nil, classifyVault(fmt.Errorf("http: body: %w", err))
	}
	p.body = body
	return p, nil
}

func (e *Executor) lookup(ctx context.Context, ref vault.Ref, sink secretSink) (string, error) {
	v, err := e.vault.Resolve(ctx, ref)
	if err != nil {
		return "", err
	}
	sink.AddSecret(v)
	return v, nil
}

// classifyVault marks resolution errors that no retry can fix as terminal.
func classifyVault(err error) error {
	if vault.IsPermanent(err) {
		return executor.Terminal(err)
	}
	return err
}

// sendError explains a failed exchange. A redirect refused by policy is
// terminal; the rest (network errors, the spec's timeout, a cancelled task)
// may be retried.
func (e *Executor) sendError(ctx, callCtx context.Context, target string, timeout int, err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		// url.Error repeats the URL, unredacted; the target says it once.
		err = ue.Err
	}
	switch {
	case errors.Is(err, ErrSecretBodyRedirect), errors.Is(err, ErrTooManyRedirects):
		return executor.Terminal(fmt.Errorf("http: %s: %w", target, err))
	case ctx.Err() != nil:
		return fmt.Errorf("http: %s: %w", target, context.Cause(ctx))
	case callCtx.Err() != nil:
		return fmt.Errorf("http: %s: no response within %ds (timeout_seconds): %w", target, timeout, callCtx.Err())
	}
	return fmt.Errorf("http: %s: %w", target, err)
}

// accepted reports whether status counts as success for spec.
func accepted(spec *taskspec.HTTP, status int) bool {
	if len(spec.ExpectStatus) > 0 {
		return slices.Contains(spec.ExpectStatus, status)
	}
	if status >= 200 && status < 300 {
		return true
	}
	// Not following redirects means the 3xx is the answer asked for.
	return !spec.Follow() && status >= 300 && status < 400
}

// retryableStatus reports whether a later attempt may get another answer.
func retryableStatus(status int) bool {
	return status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout
}

// encodeResult renders res and passes the whole document through the
// redactor once more, since JSON escaping can itself spell a secret (a
// secret containing `\"`). If that pass broke the document, the response
// headers and body are withheld rather than sent.
func encodeResult(red *redact.Redactor, res Result) json.RawMessage {
	doc, err := marshal(res)
	if err == nil {
		doc = red.Bytes(doc)
		if json.Valid(doc) {
			return doc
		}
	}
	res.Headers, res.Body, res.BodyBase64 = http.Header{}, redact.Marker, ""
	doc, _ = marshal(res)
	return doc
}

func marshal(res Result) ([]byte, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(res); err != nil {
		return nil, err
	}
	return []byte(strings.TrimSuffix(b.String(), "\n")), nil
}

// trimIncompleteRune drops a multi-byte character cut in half at the end,
// so a truncated text body stays UTF-8.
func trimIncompleteRune(b []byte) []byte {
	for i := 1; i < utf8.UTFMax && i <= len(b); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if r, size := utf8.DecodeRune(b[len(b)-i:]); r == utf8.RuneError && size == 1 && utf8.Valid(b[:len(b)-i]) {
				return b[:len(b)-i]
			}
			break
		}
	}
	return b
}

// scrub makes err's text safe to report, keeping what it wraps.
func scrub(red *redact.Redactor, err error) error {
	if err == nil {
		return nil
	}
	msg := red.String(err.Error())
	if executor.IsTerminal(err) {
		return executor.Terminal(&redactedError{msg: msg, err: err})
	}
	return &redactedError{msg: msg, err: err}
}

// secretSink registers resolved values with the executor's own redactor and
// with the task's.
type secretSink struct {
	own  *redact.Redactor
	task executor.Redactor
}

func (s secretSink) AddSecret(v string) {
	s.own.AddSecret(v)
	if s.task != nil {
		s.task.AddSecret(v)
	}
}
