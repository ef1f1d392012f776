package terraform_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/terraform"
)

// fetcher serves artifacts from a map.
type fetcher map[string][]byte

func (f fetcher) Fetch(_ context.Context, digest string) (io.ReadCloser, error) {
	b, ok := f[digest]
	if !ok {
		return nil, errors.New("no such artifact")
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func TestExecuteModuleSources(t *testing.T) {
	tofu := tofuPath(t)
	mod := tarGz(t, entry{name: "main.tf", body: module})
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(mod)
	}))
	t.Cleanup(plain.Close)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/m.tgz":
			_, _ = w.Write(mod)
		case "/moved.tgz":
			http.Redirect(w, r, "/m.tgz", http.StatusFound)
		case "/to-http.tgz":
			http.Redirect(w, r, plain.URL+"/m.tgz", http.StatusFound)
		case "/loop.tgz":
			http.Redirect(w, r, "/loop.tgz", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	h := &harness{workRoot: t.TempDir()}
	var err error
	h.exec, err = terraform.New(terraform.Options{
		TofuPath:      tofu,
		LocalStateDir: t.TempDir(),
		WorkRoot:      h.workRoot,
		Vault:         fakeVault{},
		HTTPClient:    srv.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(mod)
	digest := "sha256:" + hex.EncodeToString(sum[:])

	t.Run("a module from the task's artifacts runs", func(t *testing.T) {
		raw := []byte(`{"workspace":"art","artifact":"` + digest + `","variables":{"v":"a"}}`)
		out, err := h.exec.Execute(t.Context(), executor.Task{ID: "t", Spec: raw, Artifacts: []string{digest}, Fetcher: fetcher{digest: mod}})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(out, []byte(`"v":"a"`)) {
			t.Fatalf("result %s lacks output v", out)
		}
	})
	t.Run("an artifact the task did not declare is refused for good", func(t *testing.T) {
		raw := []byte(`{"workspace":"art","artifact":"` + digest + `","variables":{"v":"a"}}`)
		_, err := h.exec.Execute(t.Context(), executor.Task{ID: "t", Spec: raw, Fetcher: fetcher{digest: mod}})
		if !errors.Is(err, executor.ErrArtifact) || !executor.IsTerminal(err) {
			t.Fatalf("error = %v, want a terminal ErrArtifact", err)
		}
	})
	t.Run("a module from an https URL runs", func(t *testing.T) {
		raw := []byte(`{"workspace":"web","url":"` + srv.URL + `/m.tgz","variables":{"v":"u"}}`)
		out, err := h.exec.Execute(t.Context(), executor.Task{ID: "t", Spec: raw})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(out, []byte(`"v":"u"`)) {
			t.Fatalf("result %s lacks output v", out)
		}
	})
	t.Run("a module redirected to another https URL runs", func(t *testing.T) {
		raw := []byte(`{"workspace":"web","url":"` + srv.URL + `/moved.tgz","variables":{"v":"m"}}`)
		out, err := h.exec.Execute(t.Context(), executor.Task{ID: "t", Spec: raw})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(out, []byte(`"v":"m"`)) {
			t.Fatalf("result %s lacks output v", out)
		}
	})
	redirects := []struct{ name, path, reason string }{
		{"a redirect to plain http is refused for good", "/to-http.tgz", "only fetched over https"},
		{"more than five redirects are refused for good", "/loop.tgz", "more than 5 redirects"},
	}
	for _, tt := range redirects {
		t.Run(tt.name, func(t *testing.T) {
			raw := []byte(`{"workspace":"web","url":"` + srv.URL + tt.path + `","variables":{"v":"u"}}`)
			_, err := h.exec.Execute(t.Context(), executor.Task{ID: "t", Spec: raw})
			if !errors.Is(err, terraform.ErrModule) || !executor.IsTerminal(err) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error = %v, want a terminal ErrModule saying %q", err, tt.reason)
			}
		})
	}
	t.Run("a missing URL fails for good", func(t *testing.T) {
		raw := []byte(`{"workspace":"web","url":"` + srv.URL + `/nope.tgz","variables":{"v":"u"}}`)
		_, err := h.exec.Execute(t.Context(), executor.Task{ID: "t", Spec: raw})
		if !errors.Is(err, terraform.ErrModule) || !executor.IsTerminal(err) {
			t.Fatalf("error = %v, want a terminal ErrModule", err)
		}
	})
}
