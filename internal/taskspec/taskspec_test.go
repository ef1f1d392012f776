package taskspec

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestValidateKinds(t *testing.T) {
	t.Run("an unknown kind is rejected and the known kinds are listed", func(t *testing.T) {
		err := Validate("helmx", []byte(`{}`))
		if !errors.Is(err, ErrUnknownKind) {
			t.Fatalf("error = %v, want ErrUnknownKind", err)
		}
		if !strings.Contains(err.Error(), `"helmx"`) || !strings.Contains(err.Error(), "known: helm, http, manifests, secret") {
			t.Fatalf("error %q does not name the kind and the known ones", err)
		}
	})
	t.Run("a valid http spec is accepted", func(t *testing.T) {
		if err := Validate(KindHTTP, []byte(`{"method":"GET","url":"https://api.internal/health"}`)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name, spec, reason string
	}{
		{"an unknown field is rejected by name", `{"method":"GET","url":"https://a/","verb":"x"}`, `unknown field "verb"`},
		{"a wrongly typed field is named", `{"method":"GET","url":"https://a/","timeout_seconds":"5"}`, `field "timeout_seconds"`},
		{"trailing data is rejected", `{"method":"GET","url":"https://a/"} {}`, "trailing data"},
		{"a stray closing brace is rejected", `{"method":"GET","url":"https://a/"}}`, "trailing data"},
		{"an empty spec is rejected", ``, "empty spec"},
		{"a non-object is rejected", `[1]`, "want a JSON object"},
		{"truncated JSON is rejected", `{"method":"GET"`, "truncated JSON"},
		{"an oversized spec is rejected", `{"method":"GET","url":"https://a/","body":"` + strings.Repeat("x", MaxSpecBytes) + `"}`, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(KindHTTP, []byte(tt.spec))
			if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error = %v, want ErrInvalidSpec saying %q", err, tt.reason)
			}
		})
	}
}

func TestHTTPValidate(t *testing.T) {
	valid := func() HTTP {
		return HTTP{
			Method:  "POST",
			URL:     "https://api.internal:8443/v1/deploy?x=1",
			Headers: map[string]string{"Authorization": "Bearer ${vault://local/api/token}", "X-Api-Key": "vault://local/api/key", "Content-Type": "application/json"},
			Body:    `{"password":"${vault://local/db/creds/password/v2}"}`,
		}
	}
	no := false
	tests := []struct {
		name   string
		edit   func(*HTTP)
		reason string // empty: valid
	}{
		{"a spec with references in headers and body is valid", func(*HTTP) {}, ""},
		{"all bounds at their limits are valid", func(s *HTTP) {
			s.TimeoutSeconds, s.MaxResponseBytes, s.ExpectStatus, s.FollowRedirects = MaxTimeoutSeconds, MaxResponseBytesLimit, []int{200, 599}, &no
		}, ""},
		{"a lowercase method is rejected", func(s *HTTP) { s.Method = "post" }, `method "post"`},
		{"an unknown method is rejected", func(s *HTTP) { s.Method = "CONNECT" }, `method "CONNECT"`},
		{"a missing url is rejected", func(s *HTTP) { s.URL = "" }, "url: is required"},
		{"a relative url is rejected", func(s *HTTP) { s.URL = "/v1/deploy" }, `scheme ""`},
		{"a non-http scheme is rejected", func(s *HTTP) { s.URL = "file:///etc/passwd" }, `scheme "file"`},
		{"a url without host is rejected", func(s *HTTP) { s.URL = "https:///x" }, "no host"},
		{"a url with a port but no host is rejected", func(s *HTTP) { s.URL = "https://:443/x" }, "no host"},
		{"a url with credentials is rejected", func(s *HTTP) { s.URL = "https://u:p@api/" }, "must not carry credentials"},
		{"a url with a reference is rejected", func(s *HTTP) { s.URL = "https://api/${vault://local/a/b}" }, "only in headers and body"},
		{"an overlong url is rejected", func(s *HTTP) { s.URL = "https://a/" + strings.Repeat("x", MaxURLLength) }, "longer than"},
		{"a header name with a space is rejected", func(s *HTTP) { s.Headers["X Bad"] = "1" }, `name "X Bad"`},
		{"an empty header name is rejected", func(s *HTTP) { s.Headers[""] = "1" }, `name ""`},
		{"a header value with a newline is rejected", func(s *HTTP) { s.Headers["X-A"] = "a\r\nX-Injected: 1" }, "control character"},
		{"the same header in two spellings is rejected", func(s *HTTP) { s.Headers["content-type"] = "text/plain" }, "are the same header"},
		{"a framing header is rejected", func(s *HTTP) { s.Headers["Content-Length"] = "5" }, "set by the HTTP client"},
		{"a host header is rejected", func(s *HTTP) { s.Headers["host"] = "evil" }, "set by the HTTP client"},
		{"a malformed header reference is rejected with the header named", func(s *HTTP) { s.Headers["Authorization"] = "Bearer ${vault://local/../token}" }, `headers: "Authorization"`},
		{"an unterminated header placeholder is rejected", func(s *HTTP) { s.Headers["X-A"] = "${vault://local/a/b" }, "not closed"},
		{"too many headers are rejected", func(s *HTTP) {
			for i := range MaxHeaders {
				s.Headers["X-H"+strings.Repeat("a", i)] = "1"
			}
		}, "more than 64"},
		{"an overlong header value is rejected", func(s *HTTP) { s.Headers["X-A"] = strings.Repeat("a", MaxHeaderValueLength+1) }, "longer than"},
		{"headers over the total size are rejected", func(s *HTTP) {
			for i := range 5 {
				s.Headers["X-"+strings.Repeat("b", i+1)] = strings.Repeat("a", MaxHeaderValueLength)
			}
		}, "bytes in all"},
		{"an oversized body is rejected", func(s *HTTP) { s.Body = strings.Repeat("x", MaxBodyLength+1) }, "body: "},
		{"a body with HEAD is rejected", func(s *HTTP) { s.Method = "HEAD" }, "not allowed with HEAD"},
		{"a malformed body reference is rejected", func(s *HTTP) { s.Body = "pw=${vault://local/pw}" }, "body: "},
		{"a negative timeout is rejected", func(s *HTTP) { s.TimeoutSeconds = -1 }, "timeout_seconds -1"},
		{"a timeout over the cap is rejected", func(s *HTTP) { s.TimeoutSeconds = MaxTimeoutSeconds + 1 }, "timeout_seconds"},
		{"a response cap over the hard cap is rejected", func(s *HTTP) { s.MaxResponseBytes = MaxResponseBytesLimit + 1 }, "max_response_bytes"},
		{"an impossible status is rejected", func(s *HTTP) { s.ExpectStatus = []int{200, 99} }, "expect_status[1] 99"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := valid()
			tt.edit(&s)
			err := s.Validate()
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("Validate error = %v, want it to say %q", err, tt.reason)
			}
		})
	}
}

func TestHTTPDefaults(t *testing.T) {
	var s HTTP
	if s.Timeout() != DefaultTimeoutSeconds || !s.Follow() {
		t.Fatalf("defaults: timeout %d, follow %v", s.Timeout(), s.Follow())
	}
}

func FuzzValidateHTTPSpec(f *testing.F) {
	for _, s := range []string{
		`{"method":"GET","url":"https://api.internal/health"}`,
		`{"method":"POST","url":"http://a:80/x","headers":{"Authorization":"Bearer ${vault://local/api/token}"},"body":"vault://local/db/pw","timeout_seconds":5,"expect_status":[201],"follow_redirects":false}`,
		`{"method":"GET","url":"https://u@a/"}`,
		`{}`, `[]`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, spec []byte) {
		err := Validate(KindHTTP, spec)
		if err != nil {
			if !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("error %v does not wrap ErrInvalidSpec", err)
			}
			return
		}
		// An accepted spec re-encodes to one that is accepted and decodes the
		// same, so the hub and agent can never disagree about it.
		var s HTTP
		if err := Decode(spec, &s); err != nil {
			t.Fatalf("Decode after Validate: %v", err)
		}
		again, err := json.Marshal(&s)
		if err != nil {
			t.Fatal(err)
		}
		if err := Validate(KindHTTP, again); err != nil {
			t.Fatalf("re-encoded spec %s rejected: %v", again, err)
		}
	})
}
