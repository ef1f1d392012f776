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
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/m.tgz" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(mod)
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
	t.Run("a missing URL fails for good", func(t *testing.T) {
		raw := []byte(`{"workspace":"web","url":"` + srv.URL + `/nope.tgz","variables":{"v":"u"}}`)
		_, err := h.exec.Execute(t.Context(), executor.Task{ID: "t", Spec: raw})
		if !errors.Is(err, terraform.ErrModule) || !executor.IsTerminal(err) {
			t.Fatalf("error = %v, want a terminal ErrModule", err)
		}
	})
}
