package tfdrift_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	testclock "k8s.io/utils/clock/testing"

	"github.com/outposthq/outpost/internal/agent/reconcile"
	"github.com/outposthq/outpost/internal/agent/tfdrift"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/terraform"
	"github.com/outposthq/outpost/internal/keylock"
	"github.com/outposthq/outpost/internal/kube/kubetest"
	"github.com/outposthq/outpost/internal/redact"
	"github.com/outposthq/outpost/internal/taskspec"
	"github.com/outposthq/outpost/internal/tofutest"
	"github.com/outposthq/outpost/internal/vault"
)

// noVault resolves nothing: the module has no sensitive variables.
type noVault struct{}

func (noVault) Resolve(_ context.Context, ref vault.Ref) (string, error) {
	return "", fmt.Errorf("%s: %w", ref, vault.ErrNotFound)
}

// driftModule has one built-in resource (no provider is downloaded) whose
// recorded input the test tampers with.
const driftModule = `
variable "x" {
  type = string
}

resource "terraform_data" "main" {
  input = var.x
}
`

func moduleArchive(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Name: "main.tf", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(driftModule))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte(driftModule)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readState returns the state of workspace ws from its Secret.
func readState(t *testing.T, client kubernetes.Interface, ns, ws string) map[string]any {
	t.Helper()
	state, err := tofutest.ReadState(t.Context(), client, ns, ws)
	if err != nil {
		t.Fatal(err)
	}
	return state
}

// recordedInput returns (or, with set, replaces) the input recorded for
// terraform_data.main.
func recordedInput(t *testing.T, state map[string]any, set string) any {
	t.Helper()
	attrs := tofutest.Attributes(state, "terraform_data", "main")
	if attrs == nil {
		t.Fatalf("no terraform_data.main in the state: %v", state)
	}
	in := attrs["input"]
	if set != "" {
		// A dynamic attribute is recorded with its type.
		if m, ok := in.(map[string]any); ok {
			m["value"] = set
		} else {
			attrs["input"] = set
		}
	}
	return in
}

// chanReporter passes every report to the test.
type chanReporter chan reconcile.Drift

func (r chanReporter) ReportDrift(_ context.Context, d reconcile.Drift) error {
	r <- d
	return nil
}

// TestDriftOfARealModule applies a module through the terraform executor
// with its state in a real kube-apiserver, tampers with the state, and
// has the checker detect the drift, then correct it.
func TestDriftOfARealModule(t *testing.T) {
	tofu := tofutest.Binary(t, "the terraform drift test")
	env, err := kubetest.Start()
	if errors.Is(err, kubetest.ErrNoAssets) && os.Getenv("CI") != "true" {
		t.Skipf("SKIPPING the terraform drift test: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Log(err)
		}
	})
	ns := env.Namespace(t, "tfdrift")
	cfg := env.AgentConfig(t, kubetest.Agent{Name: "agent-tfdrift", Namespace: ns})
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := kubetest.WriteKubeconfig(kubeconfig, cfg); err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	exec, err := terraform.New(terraform.Options{
		TofuPath:    tofu,
		KubeBackend: &terraform.BackendConfig{Namespace: ns, ConfigPath: kubeconfig},
		Kube:        client,
		Holder:      "agent-0",
		WorkRoot:    t.TempDir(),
		Vault:       noVault{},
	})
	if err != nil {
		t.Fatal(err)
	}
	const ws = "drifty"
	spec, err := json.Marshal(map[string]any{"workspace": ws, "archive": moduleArchive(t), "variables": map[string]any{"x": "one"}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Execute(t.Context(), executor.Task{ID: "apply-1", Kind: taskspec.KindTerraform, Spec: spec, Attempt: 1, Redact: redact.New()})
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	var applied taskspec.TerraformResult
	if err := json.Unmarshal(out, &applied); err != nil || !applied.Changed {
		t.Fatalf("apply result %s (%v), want a change", out, err)
	}
	if err := tofutest.EditState(t.Context(), client, ns, ws, func(state map[string]any) { recordedInput(t, state, "tampered") }); err != nil {
		t.Fatal(err)
	}

	clk := testclock.NewFakeClock(time.Now())
	reports := make(chanReporter, 16)
	c, err := tfdrift.New(tfdrift.Options{
		Executor: exec, Reporter: reports, Lock: &keylock.Locker{},
		NewRedactor: func() tfdrift.Redactor { return redact.New() },
		Clock:       clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	rel := tfdrift.Release{Name: ws, Revision: 1, TaskID: "apply-1", Spec: spec}
	c.SetDesired([]tfdrift.Release{rel})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	next := func(t *testing.T) reconcile.Drift {
		t.Helper()
		select {
		case d := <-reports:
			return d
		case <-t.Context().Done():
			t.Fatal("nothing reported")
		}
		return reconcile.Drift{}
	}

	t.Run("a check in the detect mode reports the tampered resource by its address", func(t *testing.T) {
		c.CheckNow(ws)
		d := next(t)
		if d.Error != "" || d.Corrected || len(d.Objects) != 1 || d.Objects[0].Address != "terraform_data.main" || len(d.Objects[0].Fields) != 1 {
			t.Fatalf("report = %+v, want terraform_data.main drifted, not corrected", d)
		}
		state := readState(t, client, ns, ws)
		if in := recordedInput(t, state, ""); fmt.Sprint(in) != "tampered" && fmt.Sprint(in) != "map[type:string value:tampered]" {
			t.Fatalf("recorded input after a detect-mode check = %v, want it left tampered", in)
		}
	})
	t.Run("a check in the correct mode applies and reports the correction", func(t *testing.T) {
		rel.Mode = reconcile.ModeCorrect
		c.SetDesired([]tfdrift.Release{rel})
		c.CheckNow(ws)
		d := next(t)
		if d.Error != "" || !d.Corrected || len(d.Objects) != 1 || d.Objects[0].Address != "terraform_data.main" {
			t.Fatalf("report = %+v, want terraform_data.main corrected", d)
		}
		state := readState(t, client, ns, ws)
		input := recordedInput(t, state, "")
		if m, ok := input.(map[string]any); (ok && m["value"] != "one") || (!ok && input != "one") {
			t.Fatalf("recorded input after the correction = %v, want one", input)
		}
	})
}
