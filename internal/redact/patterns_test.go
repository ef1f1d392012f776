package redact_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/outposthq/outpost/internal/redact"
)

// A JWT as an identity provider issues it (header {"alg":"HS256","typ":"JWT"}).
const testJWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c" //nolint:gosec // a test fixture

func TestStringScrubsCredentialsByShape(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"a bearer token in free text is replaced, the scheme kept", "calling with Bearer abc123.def-456 now", "calling with Bearer [REDACTED] now"},
		{"the scheme is recognised in any case", "BEARER Zm9vYmFy, bearer x9y8z7", "BEARER [REDACTED], bearer [REDACTED]"},
		{"basic credentials are replaced", "using Basic dXNlcjpwYXNzd29yZA== for the registry", "using Basic [REDACTED] for the registry"},
		{"a long token of letters only is replaced", "Bearer abcdefghijklmnopqrstuvwxyz", "Bearer [REDACTED]"},
		{"a token in mixed case is replaced", "Bearer aBcDeF", "Bearer [REDACTED]"},
		{"a token with JSON's escaped slash is replaced whole", `{"h":"Bearer ab\/cd12"}`, `{"h":"Bearer [REDACTED]"}`},
		{"a JWT on its own is replaced", "token=" + testJWT + "&x=1", "token=[REDACTED]&x=1"},
		{"an unsigned JWT is replaced", "got eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0. back", "got [REDACTED] back"},
		{"a JWE's five parts are replaced", "eyJhbGciOiJSU0EifQ.a1b2.c3d4.e5f6.g7h8 end", "[REDACTED] end"},
		{"an Outpost bootstrap token is replaced", "enrolling with opb_abcdefghijklmnopqrstuvwxyz234567.", "enrolling with [REDACTED]."},
		{"an Outpost API token is replaced", "opa_abcdefghijklmnopqrstuvwxyz765432", "[REDACTED]"},
		{"an Authorization line of an HTTP dump keeps only its scheme", "> GET / HTTP/1.1\n> Authorization: Token s3cr3t\n> Accept: */*", "> GET / HTTP/1.1\n> Authorization: Token [REDACTED]\n> Accept: */*"},
		{"a Proxy-Authorization line is replaced", "proxy-authorization: Basic Zm9vOmJhcg==\r\nHost: x", "proxy-authorization: Basic [REDACTED]\r\nHost: x"},
		{"an authorization value without a scheme is replaced", "Authorization: 12345", "Authorization: [REDACTED]"},
		{"a Digest authorization line is replaced with its quoted parameters", `Authorization: Digest username="u", response="6629fae49393a05397450978507c4ef1"`, "Authorization: Digest [REDACTED]"},
		{"a header line inside a JSON string ends at the escaped line break", `{"body":"HTTP/1.1 200\nSet-Cookie: sid=42\nX: y"}`, `{"body":"HTTP/1.1 200\nSet-Cookie: [REDACTED]\nX: y"}`},
		{"a header line ends where the JSON string holding it ends", `{"body":"Cookie: sid=42","x":"y"}`, `{"body":"Cookie: [REDACTED]","x":"y"}`},
		{"a Cookie line is replaced", "Cookie: sid=42; theme=dark\nnext line", "Cookie: [REDACTED]\nnext line"},
		{"a Set-Cookie line is replaced", "< Set-Cookie: sid=42; Path=/; HttpOnly", "< Set-Cookie: [REDACTED]"},
		{"a credential header as a JSON key is replaced", `{"cookie": "sid=42", "x": 1}`, `{"cookie": "[REDACTED]", "x": 1}`},
		{"a credential header in JSON of http.Header is replaced", `{"Set-Cookie":["a=1","b=2"],"X":["y"]}`, `{"Set-Cookie":["[REDACTED]","[REDACTED]"],"X":["y"]}`},
		{"a credential header as fmt prints http.Header is replaced", "map[Authorization:[Bearer abc] Cookie:[a=b] X:[y]]", "map[Authorization:[Bearer [REDACTED]] Cookie:[[REDACTED]] X:[y]]"},
		{"a credential header as a Python dict key is replaced", `{'Cookie': 'sid=42'}`, `{'Cookie': '[REDACTED]'}`},
	}
	r := redact.New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.String(tt.in); got != tt.want {
				t.Fatalf("String(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
			if got := string(r.Bytes([]byte(tt.in))); got != tt.want {
				t.Fatalf("Bytes(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
			if again := r.String(tt.want); again != tt.want {
				t.Fatalf("String is not idempotent: %q became %q", tt.want, again)
			}
		})
	}
}

func TestStringLeavesLookalikesAlone(t *testing.T) {
	tests := []struct{ name, in string }{
		{"a Kubernetes kind is kept", "applying apps.v1.Deployment shop/web"},
		{"a version string is kept", "helm v4.0.1 and chart 1.2.3-rc.1+build.5"},
		{"a host name is kept", "dialing api.eu-west-1.example.com:443"},
		{"base64 JSON without dots is kept", "data: eyJhdXRocyI6e319"},
		{"prose about bearer tokens is kept", "the request needs a Bearer token"},
		{"prose about basic auth is kept", "Basic auth failed; basic HTTP is not allowed"},
		{"a WWW-Authenticate challenge is kept", `WWW-Authenticate: Bearer realm="example", error="invalid_token"`},
		{"a marker already written is kept", "Authorization: Bearer [REDACTED]"},
		{"a null cookie in JSON is kept", `{"cookie": null, "authorization": 3}`},
		{"an empty header line is kept", "Cookie:\nAccept: */*"},
		{"a word that merely starts like a header is kept", "cookies: 3, authorizations: none"},
	}
	r := redact.New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.String(tt.in); got != tt.in {
				t.Fatalf("String(%q) = %q, want it unchanged", tt.in, got)
			}
		})
	}
}

func TestStringKeepsJSONValid(t *testing.T) {
	doc, err := json.Marshal(map[string]any{
		"headers": map[string][]string{"Set-Cookie": {`sid="q\"x"`}, "Authorization": {"Bearer " + testJWT}},
		"body":    "echo: Authorization: Basic dXNlcjpwYXNz\nCookie: a=b",
	})
	if err != nil {
		t.Fatal(err)
	}
	got := redact.New().Bytes(doc)
	if !json.Valid(got) {
		t.Fatalf("Bytes broke the JSON document: %s", got)
	}
	for _, leak := range []string{"sid=", testJWT, "dXNlcjpwYXNz", "a=b"} {
		if strings.Contains(string(got), leak) {
			t.Errorf("Bytes left %q in %s", leak, got)
		}
	}
}

func TestNewChild(t *testing.T) {
	parent := redact.New()
	a, b := redact.NewChild(parent), redact.NewChild(parent)
	a.AddSecret("secret-of-a")
	b.AddSecret("secret-of-b")
	tests := []struct {
		name string
		r    *redact.Redactor
		in   string
		want string
	}{
		{"the parent redacts what each child was told", parent, "secret-of-a secret-of-b", "[REDACTED] [REDACTED]"},
		{"a child redacts its own secrets", a, "secret-of-a", "[REDACTED]"},
		{"a child does not see its sibling's secrets", a, "secret-of-b", "secret-of-b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.String(tt.in); got != tt.want {
				t.Fatalf("String(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzStringIsIdempotent(f *testing.F) {
	f.Add("Authorization: Bearer abc123\nCookie: a=b")
	f.Add(`{"cookie":["x","y"],"a":"Basic Zm9vOmJhcg=="}`)
	f.Add("map[Authorization:[Basic x1]] " + testJWT)
	f.Add("Set-Cookie: [REDACTED]]")
	f.Fuzz(func(t *testing.T, in string) {
		r := redact.New()
		once := r.String(in)
		if twice := r.String(once); twice != once {
			t.Fatalf("String(%q) = %q, and again %q", in, once, twice)
		}
		if b := string(r.Bytes([]byte(in))); b != once {
			t.Fatalf("Bytes(%q) = %q, String = %q", in, b, once)
		}
	})
}

func BenchmarkString(b *testing.B) {
	r := redact.New()
	for i := range 20 {
		r.AddSecret(strings.Repeat(string(rune('a'+i)), 12) + "-secret")
	}
	line := "level=INFO msg=\"applied release\" release=shop revision=12 objects=34 duration=1.2s namespace=shop\n"
	plain := strings.Repeat(line, 100)
	withCredentials := plain + "Authorization: Bearer " + testJWT + "\n"
	for _, bench := range []struct{ name, in string }{
		{"a log line with nothing to redact", line},
		{"8KiB with nothing to redact", plain},
		{"8KiB ending in a credential", withCredentials},
	} {
		b.Run(bench.name, func(b *testing.B) {
			b.SetBytes(int64(len(bench.in)))
			b.ReportAllocs()
			for b.Loop() {
				r.String(bench.in)
			}
		})
	}
}
