package e2e

import (
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/registry"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// registryPassword must never leave the Secret it is kept in, except
// towards the registry.
const registryPassword = "e2e-Registry-Passw0rd-7f3a"

// privateRegistry serves an in-process OCI registry on 127.0.0.1 that
// wants basic auth, holding the shop chart as charts/shop:1.2.0.
func privateRegistry(t *testing.T) string {
	t.Helper()
	inner := ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "deployer" || p != registryPassword {
			w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	ch, err := loader.LoadDir(shopChart)
	if err != nil {
		t.Fatal(err)
	}
	path, err := chartutil.Save(ch, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	archive, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	host := srv.Listener.Addr().String()
	client, err := registry.NewClient(registry.ClientOptPlainHTTP(), registry.ClientOptBasicAuth("deployer", registryPassword),
		registry.ClientOptCredentialsFile(os.DevNull), registry.ClientOptHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Push(archive, host+"/charts/shop:1.2.0"); err != nil {
		t.Fatal(err)
	}
	return host
}

// TestHelmFromAPrivateRegistry installs a chart from an OCI registry whose
// password the agent reads from a Secret in its own namespace
// (vault://k8s/...), and then looks for the password everywhere it must
// not be: the task as the hub stores and the CLI shows it, the hub's
// database files, the hub's and the agent's logs, and the audit log.
func TestHelmFromAPrivateRegistry(t *testing.T) {
	r := startKubeRig(t, "")
	host := privateRegistry(t)
	creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "registry-creds", Namespace: r.agentNS},
		StringData: map[string]string{"password": registryPassword}}
	if _, err := r.env.Client.CoreV1().Secrets(r.agentNS).Create(t.Context(), creds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	args := append([]string{"--chart", "oci://" + host + "/charts/shop", "--version", "^1.0", "--plain-http",
		"--username", "deployer", "--password", "vault://k8s/registry-creds/password"}, withoutCRDs...)
	out, res := r.helm(t, "oci-1", args...)
	if res.Status != "deployed" || res.Chart != "shop-1.2.0" || !strings.Contains(res.Source, host) {
		t.Fatalf("result %+v\n%s", res, out)
	}
	if got := r.shopConfig(t)["greeting"]; got != "hello" {
		t.Errorf("greeting %q, want the chart's default", got)
	}

	t.Run("a wrong reference fails the fetch and names the reference, not a value", func(t *testing.T) {
		bad := append([]string{"--chart", "oci://" + host + "/charts/shop", "--plain-http",
			"--username", "deployer", "--password", "vault://k8s/registry-creds/missing"}, withoutCRDs...)
		out, err := runCLI(t, r.cliConfig, "", append([]string{"task", "run", "--env", "prod", "--id", "oci-2", "--release", "shop", "--namespace", r.target, "--wait"}, bad...)...)
		if err == nil {
			t.Fatalf("the task succeeded with a missing key:\n%s", out)
		}
		task := r.h.task(t, "oci-2")
		if !strings.Contains(task.GetError(), "fetch") || !strings.Contains(task.GetError(), "vault://k8s/registry-creds/missing") {
			t.Errorf("error %q, want the fetch phase and the reference named", task.GetError())
		}
	})

	t.Run("the password is nowhere but in its Secret", func(t *testing.T) {
		secret := []byte(registryPassword)
		for _, id := range []string{"oci-1", "oci-2"} {
			task := r.h.task(t, id)
			for what, b := range map[string][]byte{"result": task.GetResult(), "error": []byte(task.GetError()), "spec": task.GetSpec()} {
				if bytes.Contains(b, secret) {
					t.Errorf("task %s %s holds the password", id, what)
				}
			}
		}
		if strings.Contains(out, registryPassword) {
			t.Error("the CLI printed the password")
		}
		if strings.Contains(r.agent.out.String(), registryPassword) {
			t.Error("the agent's log holds the password")
		}
		if strings.Contains(r.h.p.out.String(), registryPassword) {
			t.Error("the hub's log holds the password")
		}
		files, _ := filepath.Glob(r.h.db + "*")
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, secret) {
				t.Errorf("%s holds the password", filepath.Base(f))
			}
		}
		audit := r.cli(t, "", "audit", "list", "-o", "json")
		if strings.Contains(audit, registryPassword) {
			t.Error("the audit log holds the password")
		}
	})
}
