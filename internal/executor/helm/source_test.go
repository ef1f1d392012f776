package helm_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/helm"
	"github.com/outposthq/outpost/internal/executor/helm/chartsource"
	"github.com/outposthq/outpost/internal/taskspec"
	"github.com/outposthq/outpost/internal/vault"
)

const repoPassword = "s3cret-repo-passw0rd"

// chartRepo serves the shop chart as an HTTPS chart repository that wants
// basic auth.
func chartRepo(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	archive := packChart(t, "shop", nil)
	sum := sha256.Sum256(archive)
	index := fmt.Sprintf(`apiVersion: v1
entries:
  shop:
    - apiVersion: v2
      name: shop
      version: 1.2.0
      appVersion: "2.0"
      digest: %s
      urls: [charts/shop-1.2.0.tgz]
`, hex.EncodeToString(sum[:]))
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, pass, ok := r.BasicAuth(); !ok || user != "deployer" || pass != repoPassword {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/stable/index.yaml":
			_, _ = w.Write([]byte(index))
		case "/stable/charts/shop-1.2.0.tgz":
			_, _ = w.Write(archive)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return srv, string(ca)
}

// localVault writes a vault file holding the repository's password.
func localVault(t *testing.T, password string) *vault.Resolver {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vault.json")
	doc, _ := json.Marshal(map[string]map[string]string{"charts": {"password": password}})
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	local, err := vault.NewLocal(vault.LocalOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	r, err := vault.NewResolver(vault.ResolverOptions{Providers: map[string]vault.Provider{"local": local}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestChartFromAnAuthenticatedRepository(t *testing.T) {
	srv, ca := chartRepo(t)
	s := admin(t)
	spec := func(release string) taskspec.Helm {
		return taskspec.Helm{Release: release, Namespace: s.target, Values: values(t, noWidget), Chart: &taskspec.HelmChart{
			Repository: srv.URL + "/stable", Name: "shop", Version: "^1.0", CA: ca,
			Username: "deployer", Password: "vault://local/charts/password",
		}}
	}

	t.Run("credentials from the vault fetch the chart and never reach the result", func(t *testing.T) {
		ex := s.executor(t, func(o *helm.Options) { o.Vault = localVault(t, repoPassword) })
		raw, _ := json.Marshal(spec("fromrepo"))
		red := &secrets{}
		out, err := ex.Execute(t.Context(), executor.Task{ID: "repo-1", Kind: taskspec.KindHelm, Spec: raw, Attempt: 1, Redact: red})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), repoPassword) {
			t.Fatalf("the result holds the password: %s", out)
		}
		var res helm.Result
		_ = json.Unmarshal(out, &res)
		if res.Status != "deployed" || !strings.Contains(res.Source, "shop@1.2.0") {
			t.Errorf("result %+v", res)
		}
		if len(red.values) == 0 || red.values[len(red.values)-1] != repoPassword {
			t.Errorf("the resolved password was not registered with the redactor (%d values)", len(red.values))
		}
	})

	t.Run("a wrong password fails the fetch without naming it", func(t *testing.T) {
		ex := s.executor(t, func(o *helm.Options) { o.Vault = localVault(t, "wrong-password-value") })
		_, err := run(t, ex, "repo-2", spec("badauth"))
		wantPhase(t, err, helm.PhaseFetch, true, chartsource.ErrAuth, "401")
		if strings.Contains(err.Error(), "wrong-password-value") {
			t.Errorf("the error names the password: %v", err)
		}
	})

	t.Run("a reference the vault cannot resolve is named", func(t *testing.T) {
		ex := s.executor(t)
		_, err := run(t, ex, "repo-3", spec("noref"))
		wantPhase(t, err, helm.PhaseFetch, true, vault.ErrUnknownProvider, "vault://local/charts/password")
	})
}
