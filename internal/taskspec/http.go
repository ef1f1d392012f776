package taskspec

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/outposthq/outpost/internal/vault"
)

// KindHTTP calls an internal REST endpoint with resolved credentials.
const KindHTTP = "http"

// Bounds of an HTTP spec.
const (
	// MaxURLLength caps the URL.
	MaxURLLength = 8 << 10
	// MaxHeaders caps the number of request headers.
	MaxHeaders = 64
	// MaxHeaderValueLength caps one header value as written in the spec.
	MaxHeaderValueLength = 8 << 10
	// MaxHeaderBytes caps all header names and values together.
	MaxHeaderBytes = 32 << 10
	// MaxBodyLength caps the request body as written in the spec.
	MaxBodyLength = 256 << 10
	// DefaultTimeoutSeconds applies when TimeoutSeconds is 0.
	DefaultTimeoutSeconds = 30
	// MaxTimeoutSeconds caps TimeoutSeconds.
	MaxTimeoutSeconds = 300
	// MaxResponseBytesLimit is the hard cap on MaxResponseBytes.
	MaxResponseBytesLimit = 1 << 20
	// MaxExpectStatus caps the number of ExpectStatus entries.
	MaxExpectStatus = 32
)

// methods are the request methods an HTTP task may use.
var methods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions,
}

// reservedHeaders are set by the HTTP client from the request itself;
// letting a spec set them would desynchronise framing or routing.
var reservedHeaders = []string{
	"Host", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive",
	"Proxy-Connection", "Te", "Trailer", "Upgrade",
}

// HTTP is the spec of an http task: one request to an endpoint the agent can
// reach. Header values and the body may hold vault references, either as the
// whole value (vault://local/api/token) or embedded as placeholders
// ("Bearer ${vault://local/api/token}"); the agent resolves them, the hub
// never sees the values. The URL may not hold credentials or references.
type HTTP struct {
	// Method is one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS.
	Method string `json:"method"`
	// URL is an absolute http or https URL with a host.
	URL string `json:"url"`
	// Headers are the request headers, one value each.
	Headers map[string]string `json:"headers,omitempty"`
	// Body is sent as is after references are resolved; not allowed with
	// HEAD.
	Body string `json:"body,omitempty"`
	// TimeoutSeconds bounds the whole exchange, redirects included; 0 means
	// DefaultTimeoutSeconds.
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
	// MaxResponseBytes caps the response body kept; 0 means the executor's
	// default. At most MaxResponseBytesLimit.
	MaxResponseBytes int64 `json:"max_response_bytes,omitempty"`
	// ExpectStatus lists the statuses that count as success; empty means any
	// 2xx.
	ExpectStatus []int `json:"expect_status,omitempty"`
	// FollowRedirects says whether to follow redirects (at most 10); nil
	// means true. When false, a 3xx response is the result.
	FollowRedirects *bool `json:"follow_redirects,omitempty"`
}

var _ Spec = (*HTTP)(nil)

// Timeout returns the effective timeout in seconds.
func (s *HTTP) Timeout() int {
	if s.TimeoutSeconds == 0 {
		return DefaultTimeoutSeconds
	}
	return s.TimeoutSeconds
}

// Follow reports whether redirects are followed.
func (s *HTTP) Follow() bool { return s.FollowRedirects == nil || *s.FollowRedirects }

// Validate checks every field and names the first one at fault.
func (s *HTTP) Validate() error {
	if !slices.Contains(methods, s.Method) {
		return fmt.Errorf("method %q: want one of %s", s.Method, strings.Join(methods, ", "))
	}
	if err := validateURL(s.URL); err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if err := validateHeaders(s.Headers); err != nil {
		return err
	}
	if len(s.Body) > MaxBodyLength {
		return fmt.Errorf("body: %d bytes, larger than %d", len(s.Body), MaxBodyLength)
	}
	if s.Body != "" && s.Method == http.MethodHead {
		return fmt.Errorf("body: not allowed with HEAD")
	}
	if _, err := vault.Refs(s.Body); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	if s.TimeoutSeconds < 0 || s.TimeoutSeconds > MaxTimeoutSeconds {
		return fmt.Errorf("timeout_seconds %d: want 0 (default %d) up to %d", s.TimeoutSeconds, DefaultTimeoutSeconds, MaxTimeoutSeconds)
	}
	if s.MaxResponseBytes < 0 || s.MaxResponseBytes > MaxResponseBytesLimit {
		return fmt.Errorf("max_response_bytes %d: want 0 (default) up to %d", s.MaxResponseBytes, MaxResponseBytesLimit)
	}
	if len(s.ExpectStatus) > MaxExpectStatus {
		return fmt.Errorf("expect_status: %d entries, more than %d", len(s.ExpectStatus), MaxExpectStatus)
	}
	for i, code := range s.ExpectStatus {
		if code < 100 || code > 599 {
			return fmt.Errorf("expect_status[%d] %d: want a status from 100 to 599", i, code)
		}
	}
	return nil
}

func validateURL(raw string) error {
	if raw == "" {
		return fmt.Errorf("is required")
	}
	if len(raw) > MaxURLLength {
		return fmt.Errorf("%d bytes, longer than %d", len(raw), MaxURLLength)
	}
	if strings.Contains(raw, "vault:") {
		return fmt.Errorf("vault references are resolved only in headers and body; move the credential to a header")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("malformed: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q: want http or https", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("has no host")
	}
	if u.User != nil {
		return fmt.Errorf("must not carry credentials; send them in a header from a vault reference")
	}
	return nil
}

func validateHeaders(headers map[string]string) error {
	if len(headers) > MaxHeaders {
		return fmt.Errorf("headers: %d entries, more than %d", len(headers), MaxHeaders)
	}
	names := make([]string, 0, len(headers))
	for name := range headers {
		names = append(names, name)
	}
	// Sorted, so the same spec always reports the same header first.
	slices.Sort(names)
	seen := make(map[string]string, len(headers))
	total := 0
	for _, name := range names {
		value := headers[name]
		if !validToken(name) {
			return fmt.Errorf("headers: name %q: want an RFC 7230 token (letters, digits and !#$%%&'*+-.^_`|~)", name)
		}
		canonical := http.CanonicalHeaderKey(name)
		if prev, ok := seen[canonical]; ok {
			return fmt.Errorf("headers: %q and %q are the same header", prev, name)
		}
		seen[canonical] = name
		if slices.Contains(reservedHeaders, canonical) {
			return fmt.Errorf("headers: %q is set by the HTTP client and may not be given", name)
		}
		if len(value) > MaxHeaderValueLength {
			return fmt.Errorf("headers: %q: value of %d bytes, longer than %d", name, len(value), MaxHeaderValueLength)
		}
		if !ValidHeaderValue(value) {
			return fmt.Errorf("headers: %q: value holds a control character", name)
		}
		if _, err := vault.Refs(value); err != nil {
			return fmt.Errorf("headers: %q: %w", name, err)
		}
		total += len(name) + len(value)
	}
	if total > MaxHeaderBytes {
		return fmt.Errorf("headers: %d bytes in all, more than %d", total, MaxHeaderBytes)
	}
	return nil
}

// validToken reports whether s is an RFC 7230 token.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// ValidHeaderValue reports whether v may be sent as an HTTP header value:
// no control characters other than horizontal tab (RFC 7230 field-value).
// The executor checks resolved values with it too.
func ValidHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
