package terraform

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/taskspec"
	"github.com/outposthq/outpost/internal/tofutest"
	"github.com/outposthq/outpost/internal/vault"
)

type noVault struct{}

func (noVault) Resolve(context.Context, vault.Ref) (string, error) { return "", vault.ErrNotFound }

// erroredState is a state as the CLI writes to errored.tfstate.
const erroredState = `{
  "version": 4,
  "terraform_version": "1.10.0",
  "serial": 3,
  "lineage": "6f1b7c2e-0d3a-4b3e-9d7e-2b1f0c9a1e42",
  "outputs": {},
  "resources": [
    {
      "mode": "managed",
      "type": "terraform_data",
      "name": "x",
      "provider": "provider[\"terraform.io/builtin/terraform\"]",
      "instances": [{"schema_version": 0, "attributes": {"id": "a1", "input": null, "output": null, "triggers_replace": null}}]
    }
  ]
}
`

// initRun returns a run of an initialized module with local state.
func initRun(t *testing.T) (*run, string) {
	t.Helper()
	stateDir := t.TempDir()
	e, err := New(Options{TofuPath: tofutest.Binary(t, "terraform executor tests"), LocalStateDir: stateDir, Vault: noVault{}, WorkRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	dir := filepath.Join(root, moduleDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(`resource "terraform_data" "x" {}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.writeBackend(dir, "db"); err != nil {
		t.Fatal(err)
	}
	tf, err := e.cli(root, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := tf.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := &run{e: e, spec: &taskspec.Terraform{Workspace: "db"}, task: executor.Task{ID: "t"}, log: slog.New(slog.DiscardHandler), tf: tf}
	return r, stateDir
}

func TestRecoverState(t *testing.T) {
	applyErr := errors.New("terraform: apply: tofu: Failed to save state")
	t.Run("an apply without errored state fails as it did", func(t *testing.T) {
		r, _ := initRun(t)
		if err := r.recoverState(t.Context(), applyErr); err != applyErr { //nolint:errorlint // the very error
			t.Fatalf("error = %v, want the apply's", err)
		}
	})
	t.Run("an errored state is pushed back and the run fails retryably", func(t *testing.T) {
		r, stateDir := initRun(t)
		if err := os.WriteFile(filepath.Join(r.tf.WorkingDir(), erroredStateFile), []byte(erroredState), 0o600); err != nil {
			t.Fatal(err)
		}
		err := r.recoverState(t.Context(), applyErr)
		if !errors.Is(err, applyErr) || executor.IsTerminal(err) || !strings.Contains(err.Error(), "recovered from errored.tfstate and pushed back") {
			t.Fatalf("error = %v, want a retryable error saying the state was recovered", err)
		}
		got, rerr := os.ReadFile(filepath.Join(stateDir, "db.tfstate"))
		if rerr != nil || !strings.Contains(string(got), `"lineage":"6f1b7c2e-0d3a-4b3e-9d7e-2b1f0c9a1e42"`) || !strings.Contains(string(got), `"terraform_data"`) {
			t.Fatalf("the backend's state after the push = %s, %v, want the errored state", got, rerr)
		}
	})
	t.Run("an errored state no push saves is kept and the run fails for good", func(t *testing.T) {
		r, stateDir := initRun(t)
		// A state older than the backend's is refused by every push.
		newer := strings.Replace(erroredState, `"serial": 3`, `"serial": 9`, 1)
		if err := os.WriteFile(filepath.Join(stateDir, "db.tfstate"), []byte(newer), 0o600); err != nil {
			t.Fatal(err)
		}
		stale := strings.Replace(erroredState, `"serial": 3`, `"serial": 1`, 1)
		if err := os.WriteFile(filepath.Join(r.tf.WorkingDir(), erroredStateFile), []byte(stale), 0o600); err != nil {
			t.Fatal(err)
		}
		err := r.recoverState(t.Context(), applyErr)
		kept := filepath.Join(stateDir, "db.errored.tfstate")
		if !errors.Is(err, ErrStateNotSaved) || !executor.IsTerminal(err) || !strings.Contains(err.Error(), "tofu state push "+kept) {
			t.Fatalf("error = %v, want a terminal ErrStateNotSaved saying how to push the state back", err)
		}
		if got, rerr := os.ReadFile(kept); rerr != nil || string(got) != stale {
			t.Fatalf("kept state = %s, %v, want the errored state", got, rerr)
		}
	})
}
