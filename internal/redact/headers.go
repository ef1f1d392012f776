package redact

import (
	"net/http"
	"strings"
)

// credentialHeaders are dropped whatever their value.
var credentialHeaders = map[string]bool{
	"Authorization":       true,
	"Proxy-Authorization": true,
	"Cookie":              true,
	"Set-Cookie":          true,
	"X-Api-Key":           true,
	"X-Auth-Token":        true,
}

// credentialWords, found in a header's name, mark it as carrying a
// credential. Over-matching (Idempotency-Key) only hides a harmless value.
var credentialWords = []string{"auth", "token", "secret", "passw", "pwd", "cookie", "session", "credential", "signature", "apikey", "api-key", "api_key", "private"}

// IsCredentialHeader reports whether a header with this name carries a
// credential, judging by the name alone.
func IsCredentialHeader(name string) bool {
	if credentialHeaders[http.CanonicalHeaderKey(name)] {
		return true
	}
	lower := strings.ToLower(name)
	for _, w := range credentialWords {
		if strings.Contains(lower, w) {
			return true
		}
	}
	for _, part := range strings.FieldsFunc(lower, func(r rune) bool { return r == '-' || r == '_' }) {
		if part == "key" {
			return true
		}
	}
	return false
}

// Headers returns a copy of h in which credential headers (see
// IsCredentialHeader) have each value replaced by Marker, and registered
// secrets are redacted from the other values. h is not modified.
func (r *Redactor) Headers(h http.Header) http.Header {
	if h == nil {
		return nil
	}
	out := make(http.Header, len(h))
	for name, values := range h {
		credential := IsCredentialHeader(name)
		redacted := make([]string, len(values))
		for i, v := range values {
			if credential {
				redacted[i] = Marker
			} else {
				redacted[i] = r.String(v)
			}
		}
		// A server could echo a secret as a header name too.
		name = r.String(name)
		out[name] = append(out[name], redacted...)
	}
	return out
}
