package terraform_test

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outposthq/outpost/internal/executor/terraform"
)

// TestExecuteKubernetesBackend keeps the state in a real kube-apiserver,
// as the agent does, with a least-privilege identity.
func TestExecuteKubernetesBackend(t *testing.T) {
	a := newAgentFixture(t)
	env, ns := a.env, a.ns
	opts := a.options(t, "agent-0", 0)
	h := &harness{workRoot: opts.WorkRoot}
	var err error
	h.exec, err = terraform.New(opts)
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
		if l, err := env.Client.CoordinationV1().Leases(ns).Get(t.Context(), "outpost-tf-db", metav1.GetOptions{}); err != nil || l.Spec.HolderIdentity != nil {
			t.Fatalf("fence Lease after the run: %v, %v, want it released", l, err)
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
