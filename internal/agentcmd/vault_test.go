package agentcmd

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/hubtest"
	"github.com/outposthq/outpost/internal/kube/kubetest"
	"github.com/outposthq/outpost/internal/taskspec"
	"github.com/outposthq/outpost/internal/vault"
)

// headerRecorder is an internal API that remembers the headers it got.
type headerRecorder struct {
	mu      sync.Mutex
	headers []http.Header
}

func (h *headerRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.headers = append(h.headers, r.Header.Clone())
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (h *headerRecorder) last(t *testing.T) http.Header {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.headers) == 0 {
		t.Fatal("the internal API got no request")
	}
	return h.headers[len(h.headers)-1]
}

func runHTTPTask(t *testing.T, h *hubtest.Hub, id, url string, headers map[string]string) *outpostv1.Task {
	t.Helper()
	spec, err := json.Marshal(taskspec.HTTP{Method: "GET", URL: url, Headers: headers})
	if err != nil {
		t.Fatal(err)
	}
	h.Enqueue(t, &outpostv1.EnqueueTaskRequest{Id: id, Environment: "prod", Kind: taskspec.KindHTTP, Spec: spec})
	return h.WaitTask(t, id, 30*time.Second, hubtest.Terminal)
}

func TestAgentInAClusterResolvesSecretReferences(t *testing.T) {
	isolate(t)
	const token = "agentcmd-k8s-vault-token-93b1f0"
	h := hubtest.Start(t, hubtest.Options{})
	boot := h.CreateEnvironment(t, "prod")
	self := kenv.Namespace(t, "outpost")
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := kenv.AgentConfig(t, kubetest.Agent{Name: "agentcmd-vault-agent", Namespace: self})
	if err := kubetest.WriteKubeconfig(kubeconfig, cfg); err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "api-creds"}, Data: map[string][]byte{"token": []byte(token)}}
	if _, err := kenv.Client.CoreV1().Secrets(self).Create(t.Context(), sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	vaultFile := hubtest.WriteFile(t, t.TempDir(), "vault.json", []byte(`{"api": {"tenant": "acme-tenant"}}`))
	api := &headerRecorder{}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)

	p := startAgent(t, "--hub", h.URL, "--ca-file", h.CAFile, "--environment", "acme/prod", "--bootstrap-token", boot,
		"--kubeconfig", kubeconfig, "--namespace", self, "--vault-file", vaultFile)
	p.waitStarted(t)

	t.Run("a k8s reference and a local one resolve in the same task", func(t *testing.T) {
		task := runHTTPTask(t, h, "t-k8s-ref", srv.URL, map[string]string{
			"Authorization": "Bearer ${vault://k8s/api-creds/token}",
			"X-Tenant":      "vault://local/api/tenant",
		})
		if task.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED {
			t.Fatalf("task ended %s: %s\n%s", task.GetState(), task.GetError(), p.logs)
		}
		got := api.last(t)
		if got.Get("Authorization") != "Bearer "+token || got.Get("X-Tenant") != "acme-tenant" {
			t.Fatalf("the internal API got Authorization %q and X-Tenant %q, want the Secret's and the vault file's values",
				got.Get("Authorization"), got.Get("X-Tenant"))
		}
		if strings.Contains(string(task.GetResult()), token) {
			t.Fatal("the task result holds the Secret's value")
		}
	})

	t.Run("a missing key fails the task and names the Secret and key", func(t *testing.T) {
		task := runHTTPTask(t, h, "t-k8s-missing", srv.URL, map[string]string{"Authorization": "vault://k8s/api-creds/missing"})
		want := `key "missing" not found in Secret "api-creds" in namespace "` + self + `"`
		if task.GetState() != outpostv1.TaskState_TASK_STATE_FAILED || !strings.Contains(task.GetError(), want) {
			t.Fatalf("task ended %s: %q; want it failed saying %q", task.GetState(), task.GetError(), want)
		}
	})

	if strings.Contains(p.logs.String(), token) {
		t.Error("the agent logged the Secret's value")
	}
}

func TestResolverWithoutAClusterHasNoK8sProvider(t *testing.T) {
	r, err := newResolver("", nil)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := vault.ParseRef("vault://k8s/api-creds/token")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve(t.Context(), ref); !errors.Is(err, vault.ErrUnknownProvider) {
		t.Fatalf("Resolve without a cluster: %v, want ErrUnknownProvider", err)
	}
}
