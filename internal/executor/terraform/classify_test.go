package terraform_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/terraform"
)

func TestExecuteErrorClasses(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name   string
		module string
		vars   map[string]any
		reason string
	}{
		{"an unsupported argument is terminal", `resource "terraform_data" "x" {
  bogus = 1
}
`, nil, "Unsupported argument"},
		{"a missing required variable is terminal", `variable "needed" {
  type = string
}

resource "terraform_data" "x" {
  input = var.needed
}
`, nil, "No value for required variable"},
		{"an undeclared reference is terminal", `resource "terraform_data" "x" {
  input = var.nope
}
`, nil, "Reference to undeclared input variable"},
		{"invalid HCL is terminal", `resource "terraform_data" "x" {
  input = 
`, nil, "Error: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.execute(t, spec(tarGz(t, entry{name: "main.tf", body: tt.module}), tt.vars, nil), nil)
			if !errors.Is(err, terraform.ErrConfig) || !errors.Is(err, terraform.ErrCLI) || !executor.IsTerminal(err) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error = %v, want a terminal ErrConfig saying %q", err, tt.reason)
			}
		})
	}
}

// TestExecuteStateLockedLocally holds the state lock of a workspace with a
// long apply and checks that a second run on it, without a fence to prove
// the first gone, fails retryably naming the holder and breaks nothing.
func TestExecuteStateLockedLocally(t *testing.T) {
	stateDir := t.TempDir()
	ex, err := terraform.New(terraform.Options{TofuPath: tofuPath(t), LocalStateDir: stateDir, WorkRoot: t.TempDir(), Vault: fakeVault{}})
	if err != nil {
		t.Fatal(err)
	}
	slow := tarGz(t, entry{name: "main.tf", body: waiting})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := ex.Execute(ctx, executor.Task{ID: "t1", Spec: taskSpec(t, spec(slow, map[string]any{"ticks": 1500}, nil))})
		done <- err
	}()
	lockFile := filepath.Join(stateDir, ".db.tfstate.lock.info")
	waitFor(t, "the first apply to hold the state lock", func() bool {
		data, err := os.ReadFile(lockFile)
		if err != nil {
			return false
		}
		var info struct{ Operation string }
		return json.Unmarshal(data, &info) == nil && info.Operation == "OperationTypeApply"
	})
	_, err = ex.Execute(t.Context(), executor.Task{ID: "t2", Spec: taskSpec(t, spec(slow, map[string]any{"ticks": 0}, nil))})
	if !errors.Is(err, terraform.ErrStateLocked) || executor.IsTerminal(err) || !strings.Contains(err.Error(), "locked by") || !strings.Contains(err.Error(), "OperationTypeApply") {
		t.Fatalf("error = %v, want a retryable ErrStateLocked naming the holder", err)
	}
	select {
	case err := <-done:
		t.Fatalf("the first apply ended while the second ran: %v", err)
	default:
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("first apply = %v, want it cancelled", err)
	}
}
