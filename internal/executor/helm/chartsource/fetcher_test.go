package chartsource

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOptionsValidate(t *testing.T) {
	t.Run("zero options get the default caps and a discarding logger", func(t *testing.T) {
		var o Options
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
		if o.MaxIndexBytes != DefaultMaxIndexBytes || o.MaxChartBytes != DefaultMaxChartBytes || o.Logger == nil {
			t.Fatalf("options %+v", o)
		}
	})
	for _, o := range []Options{{MaxIndexBytes: -1}, {MaxChartBytes: -1}, {MaxChartBytes: maxLimit + 1}} {
		if err := o.Validate(); err == nil {
			t.Errorf("options %+v pass", o)
		}
	}
}

func TestFetchRefusesMalformedRequests(t *testing.T) {
	f := newFetcher(t, Options{})
	for _, tc := range []struct {
		name string
		req  Request
		says string
	}{
		{"no repository", Request{Chart: "web"}, "no repository given"},
		{"an unknown scheme", Request{Repository: "ftp://charts.example.com", Chart: "web"}, `scheme "ftp" is not supported`},
		{"no host", Request{Repository: "https:///charts", Chart: "web"}, "has no host"},
		{"an HTTP repository without a chart name", Request{Repository: "https://charts.example.com"}, "no chart name given"},
		{"PlainHTTP on an HTTP repository", Request{Repository: "https://charts.example.com", Chart: "web", PlainHTTP: true}, "PlainHTTP applies to oci://"},
		{"a username without a password", Request{Repository: "https://charts.example.com", Chart: "web", Username: "u"}, "a username needs a password"},
		{"an OCI reference without a chart", Request{Repository: "oci://registry.example.com"}, "no chart name"},
		{"an OCI reference with a digest", Request{Repository: "oci://registry.example.com/web@sha256:abcd"}, "give the version in Version"},
		{"an OCI reference with a query", Request{Repository: "oci://registry.example.com/web?x=1"}, "no query or fragment"},
		{"an OCI reference in upper case", Request{Repository: "oci://registry.example.com/Web"}, "invalid"},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			_, err := f.Fetch(t.Context(), tc.req)
			if !errors.Is(err, ErrInvalidRequest) || !IsPermanent(err) {
				t.Fatalf("error %v, want a permanent ErrInvalidRequest", err)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %q does not say %q", err, tc.says)
			}
		})
	}
	t.Run("a CA bundle with a base client whose transport is not an http.Transport is refused", func(t *testing.T) {
		r := newTestRepo(t, [2]string{"web", "1.0.0"})
		custom := &http.Client{Transport: roundTripperFunc(http.DefaultTransport.RoundTrip)}
		_, err := newFetcher(t, Options{HTTPClient: custom}).Fetch(t.Context(), r.request("web", ""))
		if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), "needs a base client whose Transport is an *http.Transport") {
			t.Fatalf("error %v", err)
		}
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestFetchLogsNoCredentials(t *testing.T) {
	isolateHome(t)
	var logs bytes.Buffer
	f := newFetcher(t, Options{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	r := newTestRepo(t, [2]string{"web", "1.0.0"})
	if _, err := f.Fetch(t.Context(), r.request("web", "")); err != nil {
		t.Fatal(err)
	}
	reg, _ := seeded(t, false)
	if _, err := f.Fetch(t.Context(), reg.request("charts/web", "^1")); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if strings.Count(out, `"msg":"chart fetched"`) != 2 {
		t.Fatalf("want two fetch records, got %s", out)
	}
	basic := base64.StdEncoding.EncodeToString([]byte(testUser + ":" + testPassword))
	for _, secret := range []string{testPassword, basic, testUser} {
		if strings.Contains(out, secret) {
			t.Fatalf("the log holds %q: %s", secret, out)
		}
	}
}

func TestFetchOCIStopsWithTheContext(t *testing.T) {
	isolateHome(t)
	r, _ := seeded(t, false)
	r.stallBlobs.Store(true)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := newFetcher(t, Options{}).Fetch(ctx, r.request("charts/web", "1.0.0"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the context's deadline", err)
	}
	if IsPermanent(err) {
		t.Fatal("a timed-out fetch is reported as permanent")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the fetch took %s to notice its deadline", d)
	}
}

func TestFetchOCIIgnoresAmbientDockerCredentials(t *testing.T) {
	isolateHome(t)
	r, _ := seeded(t, false)
	// Valid credentials for the registry in a Docker config: a fetch that
	// names none must not pick them up.
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(testUser + ":" + testPassword))
	cfg := `{"auths":{"` + r.host() + `":{"auth":"` + auth + `"}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	req := r.request("charts/web", "1.0.0")
	req.Username, req.Password = "", ""
	_, err := newFetcher(t, Options{}).Fetch(t.Context(), req)
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("error %v, want ErrAuth: the Docker config's credentials were used", err)
	}
}
