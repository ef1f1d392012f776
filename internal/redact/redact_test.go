package redact_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/redact"
)

var _ executor.Redactor = (*redact.Redactor)(nil)

func TestString(t *testing.T) {
	const secret = `p@ss/wörd<"1>` //nolint:gosec // a test fixture
	tests := []struct {
		name, in string
	}{
		{"a raw secret is replaced", "password=" + secret + "&x=1"},
		{"a secret escaped by Go's JSON encoder is replaced", mustJSON(t, map[string]string{"password": secret})},
		{"a secret escaped with slashes by other encoders is replaced", `{"password":"p@ss\/wörd<\"1>"}`},
		{"a secret escaped to ASCII by Python's encoder is replaced", `{"password": "p@ss/w\u00f6rd<\"1>"}`},
		{"a secret encoded in base64 on its own is replaced", "token " + base64.StdEncoding.EncodeToString([]byte(secret))},
		{"a secret at offset 0 of a base64 text is replaced", base64.StdEncoding.EncodeToString([]byte(secret + ":tail of the text"))},
		{"a secret at offset 1 of a base64 text is replaced", base64.StdEncoding.EncodeToString([]byte("u:" + secret + ":tail"))},
		{"a secret at offset 2 of a base64 text is replaced", base64.StdEncoding.EncodeToString([]byte("us:" + secret + ":tail"))},
		{"a secret in basic auth credentials is replaced", "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+secret))},
	}
	r := redact.New()
	r.AddSecret(secret)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := r.String(tt.in)
			if !strings.Contains(got, redact.Marker) {
				t.Fatalf("String(%q) = %q, want a redaction", tt.in, got)
			}
			if strings.Contains(got, secret) || strings.Contains(decodeAll(got), secret) {
				t.Fatalf("String(%q) = %q still holds the secret", tt.in, got)
			}
			if got := string(r.Bytes([]byte(tt.in))); strings.Contains(got, secret) {
				t.Fatalf("Bytes = %q still holds the secret", got)
			}
		})
	}
}

func TestStringLeavesOtherTextAlone(t *testing.T) {
	r := redact.New()
	r.AddSecret("abc")       // too short: ignored
	r.AddSecret("")          // empty: ignored
	r.AddSecret("hunter2!!") // registered
	const in = "abc is not a secret, 1234 neither"
	if got := r.String(in); got != in {
		t.Fatalf("String(%q) = %q, want it unchanged", in, got)
	}
	if got := r.String("pw hunter2!! end"); got != "pw [REDACTED] end" {
		t.Fatalf("String = %q", got)
	}
}

func TestStringDoesNotRebuildASecretFromTheMarker(t *testing.T) {
	// "D]zz" after redaction of its first occurrence would be spelled again
	// by the marker's tail and the following text.
	r := redact.New()
	r.AddSecret("D]zz")
	got := r.String("D]zzzz")
	if strings.Contains(got, "D]zz") {
		t.Fatalf("String = %q still holds the secret", got)
	}
}

func TestZeroValueIsUsable(t *testing.T) {
	var r redact.Redactor
	if got := r.String("x"); got != "x" {
		t.Fatalf("String = %q", got)
	}
	r.AddSecret("token-1234")
	if got := r.String("a token-1234"); got != "a [REDACTED]" {
		t.Fatalf("String = %q", got)
	}
}

func TestTrimPartial(t *testing.T) {
	r := redact.New()
	r.AddSecret("supersecret")
	tests := []struct{ name, in, want string }{
		{"a cut secret's start is dropped", "body ends with supers", "body ends with "},
		{"text ending in an unrelated word is kept", "body ends here", "body ends here"},
		{"a whole marker at the end is kept", "x [REDACTED]", "x [REDACTED]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.TrimPartial(tt.in); got != tt.want {
				t.Fatalf("TrimPartial(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestHeaders(t *testing.T) {
	r := redact.New()
	r.AddSecret("tok-98765")
	in := http.Header{
		"Authorization":        {"Bearer abc"},
		"Proxy-Authorization":  {"Basic xyz"},
		"Cookie":               {"a=b"},
		"Set-Cookie":           {"sid=1", "lang=en"},
		"X-Api-Key":            {"k"},
		"X-Auth-Token":         {"t"},
		"X-Vendor-Secret":      {"s"},
		"X-Amz-Security-Token": {"s"},
		"Private-Token":        {"s"},
		"X-Request-Id":         {"req-1 tok-98765"},
		"Content-Type":         {"application/json"},
	}
	got := r.Headers(in)
	for name := range in {
		switch name {
		case "X-Request-Id", "Content-Type":
			continue
		}
		for _, v := range got[name] {
			if v != redact.Marker {
				t.Errorf("header %s = %q, want %q", name, v, redact.Marker)
			}
		}
		if len(got[name]) != len(in[name]) {
			t.Errorf("header %s has %d values, want %d", name, len(got[name]), len(in[name]))
		}
	}
	if v := got.Get("X-Request-Id"); v != "req-1 [REDACTED]" {
		t.Errorf("X-Request-Id = %q, want the secret redacted", v)
	}
	if v := got.Get("Content-Type"); v != "application/json" {
		t.Errorf("Content-Type = %q, want it unchanged", v)
	}
	if in.Get("Authorization") != "Bearer abc" {
		t.Error("Headers modified its input")
	}
}

func TestIsCredentialHeader(t *testing.T) {
	for name, want := range map[string]bool{
		"authorization": true, "X-Goog-Api-Key": true, "Ocp-Apim-Subscription-Key": true, "X-CSRF-Token": true,
		"WWW-Authenticate": true, "Content-Type": false, "Keep-Alive": false, "Accept": false, "X-Request-Id": false,
	} {
		if got := redact.IsCredentialHeader(name); got != want {
			t.Errorf("IsCredentialHeader(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	r := redact.New()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			secret := strings.Repeat(string(rune('a'+i)), 6) + "-secret"
			r.AddSecret(secret)
			if got := r.String("x " + secret + " y"); strings.Contains(got, secret) {
				t.Errorf("String = %q still holds %q", got, secret)
			}
		})
	}
	wg.Wait()
}

func FuzzString(f *testing.F) {
	f.Add("hunter2!", "user=admin&pw=")
	f.Add("D]zz", "zz")
	f.Add(`a"b\c/d`, `{"k":"`)
	f.Add("ünïcødé", "prefix")
	f.Fuzz(func(t *testing.T, secret, text string) {
		r := redact.New()
		r.AddSecret(secret)
		if len(secret) < redact.MinSecretLength || strings.Contains(redact.Marker, secret) {
			return
		}
		esc := mustJSON(t, secret)
		esc = esc[1 : len(esc)-1]
		for _, in := range []string{
			text + secret + text,
			secret + text + secret,
			text + esc + text,
			text + base64.StdEncoding.EncodeToString([]byte(secret)),
		} {
			got := r.String(in)
			if strings.Contains(got, secret) {
				t.Fatalf("String(%q) = %q holds the secret %q", in, got, secret)
			}
			if strings.Contains(got, esc) {
				t.Fatalf("String(%q) = %q holds the JSON-escaped secret %q", in, got, esc)
			}
			if b := r.Bytes([]byte(in)); strings.Contains(string(b), secret) {
				t.Fatalf("Bytes(%q) = %q holds the secret %q", in, b, secret)
			}
		}
		// Embedded in base64 at any alignment, the secret must not decode back.
		for shift := range 3 {
			in := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("\x00", shift) + secret + text))
			if strings.Contains(redact.Marker, base64Core(secret, shift)) {
				continue // documented: such a form cannot be hidden
			}
			if got := r.String(in); got == in {
				t.Fatalf("base64 text %q holding the secret at offset %d was not redacted", in, shift)
			}
		}
	})
}

// base64Core is the part of the base64 text that depends only on secret when
// it starts shift bytes into the encoded text.
func base64Core(secret string, shift int) string {
	enc := base64.RawStdEncoding.EncodeToString([]byte(strings.Repeat("\x00", shift) + secret))
	return enc[(8*shift+5)/6 : 8*(shift+len(secret))/6]
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const base64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// decodeAll decodes every base64 run in s at each alignment, so a test can
// see whether a secret is still recoverable from redacted base64.
func decodeAll(s string) string {
	var out strings.Builder
	for _, field := range strings.FieldsFunc(s, func(r rune) bool {
		return !strings.ContainsRune(base64Alphabet, r)
	}) {
		for skip := range 4 {
			if skip >= len(field) {
				break
			}
			f := field[skip:]
			f = f[:len(f)/4*4]
			if b, err := base64.StdEncoding.DecodeString(f); err == nil {
				out.Write(b)
				out.WriteByte('\n')
			}
		}
	}
	return out.String()
}
