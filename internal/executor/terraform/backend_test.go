package terraform_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outposthq/outpost/internal/executor/terraform"
	"github.com/outposthq/outpost/internal/kube/kubetest"
)

// TestExecuteKubernetesBackend keeps the state in a real kube-apiserver,
// as the agent does, with a least-privilege identity.
func TestExecuteKubernetesBackend(t *testing.T) {
	tofu := tofuPath(t)
	env, err := kubetest.Start()
	if errors.Is(err, kubetest.ErrNoAssets) && os.Getenv("CI") != "true" {
		t.Skipf("SKIPPING the kubernetes backend test: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Log(err)
		}
	})
	ns := env.Namespace(t, "tf")
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := kubetest.WriteKubeconfig(kubeconfig, env.AgentConfig(t, kubetest.Agent{Name: "agent-tf", Namespace: ns})); err != nil {
		t.Fatal(err)
	}
	h := &harness{workRoot: t.TempDir()}
	h.exec, err = terraform.New(terraform.Options{
		TofuPath:    tofu,
		KubeBackend: &terraform.BackendConfig{Namespace: ns, ConfigPath: kubeconfig},
		WorkRoot:    h.workRoot,
		Vault:       fakeVault{},
	})
	if err != nil {
		t.Fatal(err)
	}
	mod := tarGz(t, entry{name: "main.tf", body: module}, entry{name: "backend.tf", body: `terraform {
  backend "local" {}
}
`})

	t.Run("an apply keeps the state in a Secret of the agent's namespace, replacing the module's backend", func(t *testing.T) {
		res, err := h.execute(t, spec(mod, map[string]any{"v": "one"}, nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Changed || res.Plan.Add != 2 {
			t.Fatalf("result = %+v, want 2 adds", res)
		}
		sec, err := env.Client.CoreV1().Secrets(ns).Get(t.Context(), "tfstate-default-db", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("state Secret: %v", err)
		}
		if sec.Labels["tfstate"] != "true" {
			t.Fatalf("state Secret labels = %v", sec.Labels)
		}
	})
	t.Run("a repeated apply reads that state and changes nothing", func(t *testing.T) {
		res, err := h.execute(t, spec(mod, map[string]any{"v": "one"}, nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Changed || res.Plan.HasChanges {
			t.Fatalf("result = %+v, want no changes", res)
		}
	})
	t.Run("another workspace has its own state", func(t *testing.T) {
		res, err := h.execute(t, spec(mod, map[string]any{"v": "one"}, map[string]any{"workspace": "cache"}), nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Plan.Add != 2 {
			t.Fatalf("result = %+v, want 2 adds in a fresh workspace", res)
		}
		if _, err := env.Client.CoreV1().Secrets(ns).Get(t.Context(), "tfstate-default-cache", metav1.GetOptions{}); err != nil {
			t.Fatalf("state Secret of the second workspace: %v", err)
		}
	})
	t.Run("destroy empties the state", func(t *testing.T) {
		res, err := h.execute(t, spec(mod, map[string]any{"v": "one"}, map[string]any{"action": "destroy"}), nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Plan.Destroy != 2 {
			t.Fatalf("result = %+v, want 2 destroys", res)
		}
	})
}
