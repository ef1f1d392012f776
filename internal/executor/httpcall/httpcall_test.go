package httpcall_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/httpcall"
	"github.com/outposthq/outpost/internal/redact"
	"github.com/outposthq/outpost/internal/vault"
)

// Secrets in the test vault. They are long and distinctive so that any
// leak, whole or encoded, is visible.
//
//nolint:gosec // test fixtures, not credentials
const (
	apiToken   = "tok_live_5f9a2c7e41d8b3"
	tenantID   = "tenant-7c1e9b0d55aa"
	dbPassword = `p@ss/w"rd-8e2f4a1c`
)

var vaultContent = map[string]map[string]string{
	"api":      {"token": apiToken, "tenant": tenantID, "broken": "line\r\nX-Injected: 1"},
	"db/creds": {"password": dbPassword},
}

// received is one request as a test server saw it.
type received struct {
	Method string
	Path   string
	Header http.Header
	Body   string
}

// recorder is a real HTTP server that records what it receives and answers
// with handle.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []received
}

func newRecorder(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, body string)) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, received{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: string(body)})
		rec.mu.Unlock()
		handle(w, r, string(body))
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (r *recorder) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.reqs...)
}

// echo answers 200 with everything the request carried, secrets included,
// as a careless endpoint would.
func echo(w http.ResponseWriter, r *http.Request, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Echo-Tenant", r.Header.Get("X-Tenant"))
	w.Header().Set("Set-Cookie", "session="+r.Header.Get("X-Tenant"))
	_ = json.NewEncoder(w).Encode(map[string]any{"headers": r.Header, "body": body})
}

func status(code int, body string) func(http.ResponseWriter, *http.Request, string) {
	return func(w http.ResponseWriter, _ *http.Request, _ string) {
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

func writeVaultFile(t *testing.T, path string, content map[string]map[string]string) {
	t.Helper()
	b, err := json.Marshal(content)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

type fixture struct {
	exec      *httpcall.Executor
	vaultPath string
	logs      *bytes.Buffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vault.json")
	writeVaultFile(t, path, vaultContent)
	local, err := vault.NewLocal(vault.LocalOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	resolver, err := vault.NewResolver(vault.ResolverOptions{Providers: map[string]vault.Provider{vault.LocalProviderName: local}})
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	exec, err := httpcall.New(httpcall.Options{
		Client: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		Vault:  resolver,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{exec: exec, vaultPath: path, logs: logs}
}

// run executes spec (a map marshalled to JSON) with a fresh task redactor.
func (f *fixture) run(ctx context.Context, t *testing.T, spec map[string]any) (json.RawMessage, error) {
	t.Helper()
	return f.runWith(ctx, t, spec, redact.New())
}

// runWith executes spec, feeding resolved values to red.
func (f *fixture) runWith(ctx context.Context, t *testing.T, spec map[string]any, red executor.Redactor) (json.RawMessage, error) {
	t.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	return f.exec.Execute(ctx, executor.Task{ID: "task-1", Kind: "http", Spec: raw, Attempt: 1, Redact: red})
}

// assertClean fails if any secret, or a common encoding of one, is in out.
func assertClean(t *testing.T, what string, out []byte) {
	t.Helper()
	for _, s := range []string{apiToken, tenantID, dbPassword} {
		esc, _ := json.Marshal(s)
		for _, form := range []string{s, string(esc[1 : len(esc)-1]), base64.StdEncoding.EncodeToString([]byte(s))} {
			if bytes.Contains(out, []byte(form)) {
				t.Fatalf("%s leaks %q:\n%s", what, form, out)
			}
		}
	}
}

func decodeResult(t *testing.T, doc json.RawMessage) httpcall.Result {
	t.Helper()
	var res httpcall.Result
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("result %s: %v", doc, err)
	}
	return res
}

func TestExecuteSendsResolvedSecretsAndRedactsTheEcho(t *testing.T) {
	f := newFixture(t)
	srv := newRecorder(t, echo)
	taskRed := redact.New()
	doc, err := f.runWith(t.Context(), t, map[string]any{
		"method": "POST",
		"url":    srv.URL + "/v1/deploy",
		"headers": map[string]string{
			"Authorization": "Bearer ${vault://local/api/token}",
			"X-Tenant":      "vault://local/api/tenant",
			"Content-Type":  "application/json",
		},
		"body": `{"password":"${vault://local/db/creds/password}"}`,
	}, taskRed)
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}

	t.Run("the server receives the resolved values", func(t *testing.T) {
		reqs := srv.requests()
		if len(reqs) != 1 {
			t.Fatalf("server saw %d requests, want 1", len(reqs))
		}
		got := reqs[0]
		if got.Header.Get("Authorization") != "Bearer "+apiToken || got.Header.Get("X-Tenant") != tenantID {
			t.Fatalf("headers = %v", got.Header)
		}
		if got.Body != `{"password":"`+dbPassword+`"}` {
			t.Fatalf("body = %q", got.Body)
		}
	})
	t.Run("the result holds no secret although the server echoed them", func(t *testing.T) {
		assertClean(t, "result", doc)
		res := decodeResult(t, doc)
		if res.Status != 200 || res.Truncated || res.BodyBase64 != "" {
			t.Fatalf("result = %+v", res)
		}
		if !strings.Contains(res.Body, redact.Marker) {
			t.Fatalf("body %q shows no redaction", res.Body)
		}
		if got := res.Headers.Get("Set-Cookie"); got != redact.Marker {
			t.Fatalf("Set-Cookie = %q, want it withheld", got)
		}
		if got := res.Headers.Get("X-Echo-Tenant"); got != redact.Marker {
			t.Fatalf("X-Echo-Tenant = %q, want the secret redacted", got)
		}
	})
	t.Run("the task's redactor knows every resolved value", func(t *testing.T) {
		for _, s := range []string{apiToken, tenantID, dbPassword} {
			if got := taskRed.String(s); got != redact.Marker {
				t.Fatalf("task redactor left %q as %q", s, got)
			}
		}
	})
	t.Run("the log holds no secret and no body", func(t *testing.T) {
		assertClean(t, "log", f.logs.Bytes())
		if !strings.Contains(f.logs.String(), `"status":200`) || strings.Contains(f.logs.String(), "password") {
			t.Fatalf("log = %s", f.logs)
		}
	})
}

func TestExecuteStatuses(t *testing.T) {
	tests := []struct {
		name      string
		code      int
		expect    []int
		wantErr   bool
		terminal  bool
		wantInErr string
	}{
		{name: "a 201 succeeds", code: 201},
		{name: "a 500 fails and may be retried", code: 500, wantErr: true, wantInErr: "unexpected status 500 Internal Server Error"},
		{name: "a 503 fails and may be retried", code: 503, wantErr: true, wantInErr: "503"},
		{name: "a 429 fails and may be retried", code: 429, wantErr: true, wantInErr: "429"},
		{name: "a 400 fails for good", code: 400, wantErr: true, terminal: true, wantInErr: "400 Bad Request"},
		{name: "a 404 fails for good", code: 404, wantErr: true, terminal: true, wantInErr: "404"},
		{name: "a 200 outside expect_status fails for good", code: 200, expect: []int{201}, wantErr: true, terminal: true, wantInErr: "200"},
		{name: "a 404 listed in expect_status succeeds", code: 404, expect: []int{404}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			// The server puts a secret into its error body, as a careless
			// one does.
			srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request, _ string) {
				w.WriteHeader(tt.code)
				_, _ = io.WriteString(w, "denied for "+r.Header.Get("Authorization"))
			})
			spec := map[string]any{"method": "GET", "url": srv.URL, "headers": map[string]string{"Authorization": "vault://local/api/token"}}
			if tt.expect != nil {
				spec["expect_status"] = tt.expect
			}
			doc, err := f.run(t.Context(), t, spec)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Execute: %v", err)
				}
				if res := decodeResult(t, doc); res.Status != tt.code || res.Body != "denied for [REDACTED]" {
					t.Fatalf("result = %+v", res)
				}
				return
			}
			if err == nil {
				t.Fatal("Execute succeeded, want an error")
			}
			if !errors.Is(err, httpcall.ErrUnexpectedStatus) || executor.IsTerminal(err) != tt.terminal {
				t.Fatalf("error = %v (terminal %v), want ErrUnexpectedStatus with terminal %v", err, executor.IsTerminal(err), tt.terminal)
			}
			if !strings.Contains(err.Error(), tt.wantInErr) || !strings.Contains(err.Error(), `denied for [REDACTED]`) {
				t.Fatalf("error %q lacks the status or the body excerpt", err)
			}
			assertClean(t, "error", []byte(err.Error()))
			assertClean(t, "result", doc)
			if res := decodeResult(t, doc); res.Status != tt.code {
				t.Fatalf("result status = %d, want %d", res.Status, tt.code)
			}
		})
	}
}

func TestExecuteRefusesBeforeSending(t *testing.T) {
	tests := []struct {
		name    string
		spec    func(url string) map[string]any
		wantErr error
		wantMsg string
	}{
		{
			name: "a missing vault key names the reference",
			spec: func(url string) map[string]any {
				return map[string]any{"method": "GET", "url": url, "headers": map[string]string{"Authorization": "Bearer ${vault://local/api/missing}"}}
			},
			wantErr: vault.ErrNotFound,
			wantMsg: `http: header "Authorization": vault: vault://local/api/missing: key "missing" not found in path "api"`,
		},
		{
			name: "a missing key in the body fails although the headers resolved",
			spec: func(url string) map[string]any {
				return map[string]any{"method": "POST", "url": url, "headers": map[string]string{"Authorization": "vault://local/api/token"}, "body": "pw=${vault://local/db/creds/nope}"}
			},
			wantErr: vault.ErrNotFound,
			wantMsg: `http: body: vault: vault://local/db/creds/nope: key "nope" not found in path "db/creds"`,
		},
		{
			name: "an unknown provider names the reference",
			spec: func(url string) map[string]any {
				return map[string]any{"method": "GET", "url": url, "headers": map[string]string{"X-Key": "vault://gcp/api/token"}}
			},
			wantErr: vault.ErrUnknownProvider,
			wantMsg: `vault://gcp/api/token: unknown provider "gcp"`,
		},
		{
			name: "a malformed reference is rejected as an invalid spec",
			spec: func(url string) map[string]any {
				return map[string]any{"method": "GET", "url": url, "headers": map[string]string{"Authorization": "Bearer ${vault://local/../token}"}}
			},
			wantErr: vault.ErrMalformedRef,
			wantMsg: `headers: "Authorization": placeholder at offset 7: vault: malformed reference "vault://local/../token"`,
		},
		{
			name: "a secret that cannot be a header value is refused without showing it",
			spec: func(url string) map[string]any {
				return map[string]any{"method": "GET", "url": url, "headers": map[string]string{"X-Broken": "vault://local/api/broken"}}
			},
			wantErr: httpcall.ErrInvalidSecret,
			wantMsg: `header "X-Broken"`,
		},
		{
			name: "an unknown spec field is rejected",
			spec: func(url string) map[string]any {
				return map[string]any{"method": "GET", "url": url, "retries": 3}
			},
			wantMsg: `unknown field "retries"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			srv := newRecorder(t, echo)
			_, err := f.run(t.Context(), t, tt.spec(srv.URL))
			if !executor.IsTerminal(err) {
				t.Fatalf("error = %v, want a terminal error", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("error = %q, want it to contain %q", err, tt.wantMsg)
			}
			assertClean(t, "error", []byte(err.Error()))
			if strings.Contains(err.Error(), "X-Injected") {
				t.Fatalf("error %q shows the secret", err)
			}
			if n := len(srv.requests()); n != 0 {
				t.Fatalf("server saw %d requests, want none", n)
			}
		})
	}
}

func TestExecuteRedirects(t *testing.T) {
	headers := map[string]string{
		"Authorization": "Bearer ${vault://local/api/token}",
		"Cookie":        "sid=literal-cookie",
		"X-Tenant":      "vault://local/api/tenant",
		"X-Plain":       "hello",
	}

	t.Run("a redirect to another port strips credentials and vault-sourced headers", func(t *testing.T) {
		f := newFixture(t)
		other := newRecorder(t, status(200, "landed"))
		first := newRecorder(t, func(w http.ResponseWriter, r *http.Request, _ string) {
			http.Redirect(w, r, other.URL+"/landing", http.StatusFound)
		})
		doc, err := f.run(t.Context(), t, map[string]any{"method": "GET", "url": first.URL + "/start", "headers": headers})
		if err != nil {
			t.Fatalf("Execute: %v", err)
		}
		if res := decodeResult(t, doc); res.Body != "landed" {
			t.Fatalf("result = %+v", res)
		}
		if got := first.requests()[0].Header.Get("Authorization"); got != "Bearer "+apiToken {
			t.Fatalf("origin got Authorization %q", got)
		}
		reqs := other.requests()
		if len(reqs) != 1 {
			t.Fatalf("other host saw %d requests", len(reqs))
		}
		h := reqs[0].Header
		for _, name := range []string{"Authorization", "Cookie", "X-Tenant"} {
			if v := h.Get(name); v != "" {
				t.Errorf("other host received %s: %q", name, v)
			}
		}
		if h.Get("X-Plain") != "hello" {
			t.Errorf("other host did not receive the plain header: %v", h)
		}
		assertClean(t, "headers at the other host", []byte(strings.Join(flatten(h), "\n")))
	})

	t.Run("a chain bounced back to the origin by another host stays stripped", func(t *testing.T) {
		f := newFixture(t)
		var origin *recorder
		other := newRecorder(t, func(w http.ResponseWriter, r *http.Request, _ string) {
			http.Redirect(w, r, origin.URL+"/steal", http.StatusFound)
		})
		origin = newRecorder(t, func(w http.ResponseWriter, r *http.Request, _ string) {
			if r.URL.Path == "/start" {
				http.Redirect(w, r, other.URL+"/bounce", http.StatusFound)
				return
			}
			_, _ = io.WriteString(w, "ok")
		})
		if _, err := f.run(t.Context(), t, map[string]any{"method": "GET", "url": origin.URL + "/start", "headers": headers}); err != nil {
			t.Fatalf("Execute: %v", err)
		}
		reqs := origin.requests()
		if len(reqs) != 2 || reqs[1].Path != "/steal" {
			t.Fatalf("origin saw %+v", reqs)
		}
		if v := reqs[1].Header.Get("Authorization") + reqs[1].Header.Get("X-Tenant"); v != "" {
			t.Fatalf("bounced request carried credentials: %q", v)
		}
	})

	t.Run("a redirect on the same host keeps credentials", func(t *testing.T) {
		f := newFixture(t)
		srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request, _ string) {
			if r.URL.Path == "/old" {
				http.Redirect(w, r, "/new", http.StatusMovedPermanently)
				return
			}
			_, _ = io.WriteString(w, "ok")
		})
		if _, err := f.run(t.Context(), t, map[string]any{"method": "GET", "url": srv.URL + "/old", "headers": headers}); err != nil {
			t.Fatalf("Execute: %v", err)
		}
		reqs := srv.requests()
		if len(reqs) != 2 {
			t.Fatalf("server saw %d requests, want 2", len(reqs))
		}
		if reqs[1].Header.Get("Authorization") != "Bearer "+apiToken || reqs[1].Header.Get("X-Tenant") != tenantID {
			t.Fatalf("redirected request lost credentials: %v", reqs[1].Header)
		}
	})

	body := `{"password":"${vault://local/db/creds/password}"}`
	for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run("a "+http.StatusText(code)+" resending a secret body to another host is refused", func(t *testing.T) {
			f := newFixture(t)
			other := newRecorder(t, status(200, "ok"))
			first := newRecorder(t, func(w http.ResponseWriter, r *http.Request, _ string) {
				http.Redirect(w, r, other.URL+"/x", code)
			})
			_, err := f.run(t.Context(), t, map[string]any{"method": "POST", "url": first.URL, "body": body})
			if !errors.Is(err, httpcall.ErrSecretBodyRedirect) || !executor.IsTerminal(err) {
				t.Fatalf("error = %v, want a terminal ErrSecretBodyRedirect", err)
			}
			assertClean(t, "error", []byte(err.Error()))
			if n := len(other.requests()); n != 0 {
				t.Fatalf("other host saw %d requests", n)
			}
		})
	}

	t.Run("a 307 resending a secret body to the same host is followed", func(t *testing.T) {
		f := newFixture(t)
		srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request, _ string) {
			if r.URL.Path == "/old" {
				http.Redirect(w, r, "/new", http.StatusTemporaryRedirect)
				return
			}
			_, _ = io.WriteString(w, "ok")
		})
		if _, err := f.run(t.Context(), t, map[string]any{"method": "POST", "url": srv.URL + "/old", "body": body}); err != nil {
			t.Fatalf("Execute: %v", err)
		}
		if reqs := srv.requests(); len(reqs) != 2 || !strings.Contains(reqs[1].Body, dbPassword) {
			t.Fatalf("server saw %+v", reqs)
		}
	})

	t.Run("a 303 to another host drops the secret body and is followed", func(t *testing.T) {
		f := newFixture(t)
		other := newRecorder(t, status(200, "ok"))
		first := newRecorder(t, func(w http.ResponseWriter, r *http.Request, _ string) {
			http.Redirect(w, r, other.URL+"/x", http.StatusSeeOther)
		})
		if _, err := f.run(t.Context(), t, map[string]any{"method": "POST", "url": first.URL, "body": body}); err != nil {
			t.Fatalf("Execute: %v", err)
		}
		if reqs := other.requests(); len(reqs) != 1 || reqs[0].Method != "GET" || reqs[0].Body != "" {
			t.Fatalf("other host saw %+v", reqs)
		}
	})

	t.Run("follow_redirects false returns the 3xx as is", func(t *testing.T) {
		f := newFixture(t)
		srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request, _ string) {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		})
		doc, err := f.run(t.Context(), t, map[string]any{"method": "GET", "url": srv.URL, "follow_redirects": false})
		if err != nil {
			t.Fatalf("Execute: %v", err)
		}
		res := decodeResult(t, doc)
		if res.Status != http.StatusFound || res.Headers.Get("Location") != "/elsewhere" || len(srv.requests()) != 1 {
			t.Fatalf("result = %+v", res)
		}
	})

	t.Run("an endless redirect loop stops after 10", func(t *testing.T) {
		f := newFixture(t)
		srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request, _ string) {
			http.Redirect(w, r, "/again", http.StatusFound)
		})
		_, err := f.run(t.Context(), t, map[string]any{"method": "GET", "url": srv.URL})
		if !errors.Is(err, httpcall.ErrTooManyRedirects) || !executor.IsTerminal(err) {
			t.Fatalf("error = %v, want a terminal ErrTooManyRedirects", err)
		}
		if n := len(srv.requests()); n != 11 {
			t.Fatalf("server saw %d requests, want the original and 10 redirects", n)
		}
	})
}

func TestExecuteBoundsTheResponse(t *testing.T) {
	t.Run("an oversized response is cut at the cap and marked truncated", func(t *testing.T) {
		f := newFixture(t)
		srv := newRecorder(t, status(200, strings.Repeat("a", 100_000)))
		doc, err := f.run(t.Context(), t, map[string]any{"method": "GET", "url": srv.URL, "max_response_bytes": 1000})
		if err != nil {
			t.Fatal(err)
		}
		if res := decodeResult(t, doc); !res.Truncated || len(res.Body) != 1000 {
			t.Fatalf("truncated %v, body of %d bytes", res.Truncated, len(res.Body))
		}
	})

	t.Run("the default cap applies when the spec sets none", func(t *testing.T) {
		f := newFixture(t)
		srv := newRecorder(t, status(200, strings.Repeat("a", httpcall.DefaultMaxResponseBytes+10)))
		doc, err := f.run(t.Context(), t, map[string]any{"method": "GET", "url": srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		if res := decodeResult(t, doc); !res.Truncated || len(res.Body) != httpcall.DefaultMaxResponseBytes {
			t.Fatalf("truncated %v, body of %d bytes", res.Truncated, len(res.Body))
		}
	})

	t.Run("a secret cut in half by the cap leaves no fragment", func(t *testing.T) {
		f := newFixture(t)
		srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request, _ string) {
			_, _ = io.WriteString(w, strings.Repeat("a", 990)+r.Header.Get("X-Tenant")+" tail")
		})
		doc, err := f.run(t.Context(), t, map[string]any{"method": "GET", "url": srv.URL, "max_response_bytes": 1000, "headers": map[string]string{"X-Tenant": "vault://local/api/tenant"}})
		if err != nil {
			t.Fatal(err)
		}
		res := decodeResult(t, doc)
		if !res.Truncated || strings.Contains(res.Body, tenantID[:6]) || res.Body != strings.Repeat("a", 990) {
			t.Fatalf("body ends %q", res.Body[980:])
		}
	})

	t.Run("a binary body is reported in base64 with secrets removed", func(t *testing.T) {
		f := newFixture(t)
		srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request, _ string) {
			_, _ = w.Write(append([]byte{0xff, 0xfe, 0x00}, r.Header.Get("Authorization")...))
		})
		doc, err := f.run(t.Context(), t, map[string]any{"method": "GET", "url": srv.URL, "headers": map[string]string{"Authorization": "vault://local/api/token"}})
		if err != nil {
			t.Fatal(err)
		}
		assertClean(t, "result", doc)
		res := decodeResult(t, doc)
		got, err := base64.StdEncoding.DecodeString(res.BodyBase64)
		if err != nil || res.Body != "" || !bytes.Equal(got, append([]byte{0xff, 0xfe, 0x00}, redact.Marker...)) {
			t.Fatalf("result = %+v (decoded %q, %v)", res, got, err)
		}
	})
}

func TestExecuteStopsInTime(t *testing.T) {
	// hang holds the request until the client goes away, and says when one
	// arrived.
	hang := func(arrived chan<- struct{}) func(http.ResponseWriter, *http.Request, string) {
		return func(w http.ResponseWriter, r *http.Request, _ string) {
			arrived <- struct{}{}
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}
	}

	t.Run("the spec's timeout ends a slow call with a retryable error", func(t *testing.T) {
		f := newFixture(t)
		srv := newRecorder(t, hang(make(chan struct{}, 1)))
		start := time.Now()
		_, err := f.run(t.Context(), t, map[string]any{"method": "GET", "url": srv.URL, "timeout_seconds": 1})
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Fatalf("took %v with a 1s timeout", elapsed)
		}
		if err == nil || executor.IsTerminal(err) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no response within 1s") {
			t.Fatalf("error = %v, want a retryable timeout", err)
		}
	})

	t.Run("cancelling the context stops the request", func(t *testing.T) {
		f := newFixture(t)
		arrived := make(chan struct{}, 1)
		srv := newRecorder(t, hang(arrived))
		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			<-arrived
			cancel()
		}()
		start := time.Now()
		_, err := f.run(ctx, t, map[string]any{"method": "GET", "url": srv.URL})
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Fatalf("took %v after cancellation", elapsed)
		}
		if !errors.Is(err, context.Canceled) || executor.IsTerminal(err) {
			t.Fatalf("error = %v, want context.Canceled, not terminal", err)
		}
	})

	t.Run("an unreachable server fails with a retryable error", func(t *testing.T) {
		f := newFixture(t)
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		_, err := f.run(t.Context(), t, map[string]any{"method": "GET", "url": url})
		if err == nil || executor.IsTerminal(err) {
			t.Fatalf("error = %v, want a retryable error", err)
		}
	})
}

func TestExecuteFollowsVaultRotation(t *testing.T) {
	f := newFixture(t)
	srv := newRecorder(t, status(200, "ok"))
	spec := map[string]any{"method": "GET", "url": srv.URL, "headers": map[string]string{"Authorization": "Bearer ${vault://local/api/token}"}}
	if _, err := f.run(t.Context(), t, spec); err != nil {
		t.Fatal(err)
	}
	const rotated = "tok_live_rotated_0042"
	writeVaultFile(t, f.vaultPath, map[string]map[string]string{"api": {"token": rotated}})
	doc, err := f.run(t.Context(), t, spec)
	if err != nil {
		t.Fatal(err)
	}
	reqs := srv.requests()
	if got := reqs[0].Header.Get("Authorization"); got != "Bearer "+apiToken {
		t.Fatalf("first call sent %q", got)
	}
	if got := reqs[1].Header.Get("Authorization"); got != "Bearer "+rotated {
		t.Fatalf("call after rotation sent %q", got)
	}
	if bytes.Contains(doc, []byte(rotated)) {
		t.Fatalf("result leaks the rotated token: %s", doc)
	}
}

func TestOptionsValidate(t *testing.T) {
	resolver, err := vault.NewResolver(vault.ResolverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts httpcall.Options
	}{
		{"a missing client is rejected", httpcall.Options{Vault: resolver}},
		{"a missing vault is rejected", httpcall.Options{Client: http.DefaultClient}},
		{"a response cap over 1 MiB is rejected", httpcall.Options{Client: http.DefaultClient, Vault: resolver, MaxResponseBytes: httpcall.MaxResponseBytesLimit + 1}},
		{"a negative response cap is rejected", httpcall.Options{Client: http.DefaultClient, Vault: resolver, MaxResponseBytes: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := httpcall.New(tt.opts); err == nil {
				t.Fatal("New accepted invalid options")
			}
		})
	}
}

func flatten(h http.Header) []string {
	var out []string
	for name, values := range h {
		for _, v := range values {
			out = append(out, name+": "+v)
		}
	}
	return out
}
