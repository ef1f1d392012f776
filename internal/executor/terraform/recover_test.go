package terraform_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/terraform"
)

// TestExecuteKeepsErroredState takes away the agent's right to update
// Secrets in the middle of an apply, so that the backend cannot save the
// state and the CLI writes errored.tfstate: no push can save it either,
// so the run keeps it in a Secret and fails terminally saying how to push
// it back.
func TestExecuteKeepsErroredState(t *testing.T) {
	a := newAgentFixture(t)
	ex, err := terraform.New(a.options(t, "agent-0", 0))
	if err != nil {
		t.Fatal(err)
	}
	mod := tarGz(t, entry{name: "main.tf", body: waiting})
	raw := taskSpec(t, spec(mod, map[string]any{"ticks": 10}, map[string]any{"workspace": "errored"}))
	done := make(chan error, 1)
	go func() {
		_, err := ex.Execute(t.Context(), executor.Task{ID: "t1", Spec: raw})
		done <- err
	}()
	waitFor(t, "the apply to hold the state lock", func() bool { return a.applyLocked(t, "errored") })
	roles := a.env.Client.RbacV1().Roles(a.ns)
	role, err := roles.Get(t.Context(), "outpost-agent-self-agent-"+a.ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	role.Rules = append([]rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch", "create"}}}, role.Rules[1:]...)
	if _, err := roles.Update(t.Context(), role, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var runErr error
	select {
	case runErr = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the run did not end")
	}
	if !errors.Is(runErr, terraform.ErrStateNotSaved) || !executor.IsTerminal(runErr) ||
		!strings.Contains(runErr.Error(), "kubectl get secret -n "+a.ns+" tfstate-errored-errored -o jsonpath='{.data.tfstate}' | base64 -d > errored.tfstate && tofu state push errored.tfstate") {
		t.Fatalf("error = %v, want a terminal ErrStateNotSaved saying how to push the state back", runErr)
	}
	sec, err := a.env.Client.CoreV1().Secrets(a.ns).Get(t.Context(), "tfstate-errored-errored", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("errored state Secret: %v", err)
	}
	var state struct {
		Resources []struct{ Type, Name string }
	}
	if err := json.Unmarshal(sec.Data["tfstate"], &state); err != nil {
		t.Fatalf("errored state: %v", err)
	}
	if len(state.Resources) != 1 || state.Resources[0].Type != "terraform_data" || state.Resources[0].Name != "slow" {
		t.Fatalf("errored state resources = %+v, want the applied terraform_data.slow", state.Resources)
	}
	if sec.Labels["app.kubernetes.io/managed-by"] != "outpost" || sec.Labels["outpost.dev/terraform-workspace"] != "errored" {
		t.Fatalf("errored state Secret labels = %v", sec.Labels)
	}
}
