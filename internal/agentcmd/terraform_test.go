package agentcmd

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/outposthq/outpost/internal/executor/terraform"
	"github.com/outposthq/outpost/internal/kube/kubetest"
	"github.com/outposthq/outpost/internal/taskspec"
)

// fakeTofu writes an executable file standing for the OpenTofu binary;
// building the executor only checks that it is there.
func fakeTofu(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tofu")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil { //nolint:gosec // an executable stand-in
		t.Fatal(err)
	}
	return p
}

// buildArgs builds the agent as `outpost-agent args...` would, without
// starting it, and returns the kinds it offers, its reconciler and its log.
func buildArgs(t *testing.T, args ...string) (kinds []string, rec *reconciling, logs *syncBuffer, err error) {
	t.Helper()
	f := &flags{}
	fl := pflag.NewFlagSet("outpost-agent", pflag.ContinueOnError)
	f.bind(fl)
	if err := fl.Parse(append([]string{"--hub", "https://hub.invalid", "--log-level", "debug"}, args...)); err != nil {
		t.Fatal(err)
	}
	logs = &syncBuffer{}
	a, rec, err := build(f, logs)
	if err != nil {
		return nil, nil, logs, err
	}
	return a.Kinds(), rec, logs, nil
}

func TestTerraformFlagsParse(t *testing.T) {
	f := &flags{}
	fl := pflag.NewFlagSet("outpost-agent", pflag.ContinueOnError)
	f.bind(fl)
	err := fl.Parse([]string{"--tofu", "/opt/tofu", "--terraform-namespace", "tf-state", "--terraform-work-root", "/run/tf",
		"--terraform-plugin-cache", "/var/cache/tf", "--terraform-env", "AWS_PROFILE", "--terraform-env", "ARM_TENANT_ID",
		"--terraform-drift-interval", "15m", "--terraform-fence-duration", "2m"})
	if err != nil {
		t.Fatal(err)
	}
	got := f.terraform
	if got.tofu != "/opt/tofu" || got.namespace != "tf-state" || got.workRoot != "/run/tf" || got.pluginCache != "/var/cache/tf" ||
		!slices.Equal(got.env, []string{"AWS_PROFILE", "ARM_TENANT_ID"}) || got.driftInterval != 15*time.Minute || got.fenceDuration != 2*time.Minute {
		t.Fatalf("terraform flags = %+v", got)
	}
	t.Run("the drift interval defaults to an hour", func(t *testing.T) {
		f := &flags{}
		fl := pflag.NewFlagSet("outpost-agent", pflag.ContinueOnError)
		f.bind(fl)
		if err := fl.Parse(nil); err != nil {
			t.Fatal(err)
		}
		if f.terraform.driftInterval != time.Hour {
			t.Fatalf("drift interval = %v", f.terraform.driftInterval)
		}
	})
	t.Run("the named variables are passed beside the workload-identity ones, once each", func(t *testing.T) {
		tf := terraformFlags{env: []string{"AWS_PROFILE", "AWS_ROLE_ARN"}}
		got := tf.envNames()
		if !slices.Contains(got, "AWS_PROFILE") || !slices.Contains(got, "AZURE_CLIENT_ID") || len(got) != len(terraform.IdentityEnvNames)+1 {
			t.Fatalf("names = %v, want the identity names and AWS_PROFILE once", got)
		}
	})
}

func TestTerraformTasksAreOffered(t *testing.T) {
	isolate(t)
	t.Setenv("OUTPOST_TOFU", "")
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := kubetest.WriteKubeconfig(kubeconfig, kenv.Config); err != nil {
		t.Fatal(err)
	}
	ns := kenv.Namespace(t, "tf-agent")
	tofu := fakeTofu(t)
	tests := []struct {
		name      string
		args      []string
		want      bool
		wantDrift bool
		wantLog   string
	}{
		{"with --tofu and a cluster terraform tasks are offered and releases checked for drift", []string{"--kubeconfig", kubeconfig, "--namespace", ns, "--tofu", tofu, "--replica-id", "r1"}, true, true, "terraform configured"},
		{"with --no-reconcile terraform tasks are offered but releases not checked", []string{"--kubeconfig", kubeconfig, "--namespace", ns, "--tofu", tofu, "--no-reconcile"}, true, false, "terraform configured"},
		{"with a drift interval of 0 releases are not checked", []string{"--kubeconfig", kubeconfig, "--namespace", ns, "--tofu", tofu, "--terraform-drift-interval", "0"}, true, false, "--terraform-drift-interval is 0"},
		{"without --tofu terraform tasks are not offered, and the log says why", []string{"--kubeconfig", kubeconfig, "--namespace", ns}, false, false, "terraform tasks are off: pass --tofu"},
		{"without a cluster terraform tasks are not offered, and the log says why", []string{"--tofu", tofu}, false, false, "no Kubernetes cluster configured to keep the state in"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kinds, rec, logBuf, err := buildArgs(t, tt.args...)
			logs := logBuf.String()
			if err != nil {
				t.Fatalf("build: %v\n%s", err, logs)
			}
			if drift := rec != nil && rec.drift != nil; drift != tt.wantDrift {
				t.Errorf("drift checker built %t, want %t", drift, tt.wantDrift)
			}
			if got := slices.Contains(kinds, taskspec.KindTerraform); got != tt.want {
				t.Fatalf("kinds = %v, terraform offered %t, want %t\n%s", kinds, got, tt.want, logs)
			}
			if !strings.Contains(logs, tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, logs)
			}
		})
	}
}

func TestTerraformFlagsAreChecked(t *testing.T) {
	isolate(t)
	t.Setenv("OUTPOST_TOFU", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-key")
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := kubetest.WriteKubeconfig(kubeconfig, kenv.Config); err != nil {
		t.Fatal(err)
	}
	tofu := fakeTofu(t)
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"a relative OpenTofu path is refused", []string{"--kubeconfig", kubeconfig, "--tofu", "tofu"}, "want an absolute path"},
		{"a missing OpenTofu binary is named", []string{"--kubeconfig", kubeconfig, "--tofu", "/nonexistent/tofu"}, "/nonexistent/tofu"},
		{"a state namespace without a cluster is refused", []string{"--tofu", tofu, "--terraform-namespace", "tf"}, "needs a cluster"},
		{"an invalid state namespace is refused", []string{"--kubeconfig", kubeconfig, "--tofu", tofu, "--terraform-namespace", "Bad_NS"}, "Bad_NS"},
		{"a missing work root is refused", []string{"--kubeconfig", kubeconfig, "--tofu", tofu, "--terraform-work-root", "/nonexistent/work"}, "--terraform-work-root"},
		{"a long-lived cloud key is refused", []string{"--kubeconfig", kubeconfig, "--tofu", tofu, "--terraform-env", "AWS_SECRET_ACCESS_KEY"}, "AWS_SECRET_ACCESS_KEY"},
		{"a negative drift interval is refused", []string{"--kubeconfig", kubeconfig, "--tofu", tofu, "--terraform-drift-interval", "-1m"}, "--terraform-drift-interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, logs, err := buildArgs(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one naming %q\n%s", err, tt.wantErr, logs)
			}
		})
	}
}

func TestTheDriftCheckerRunsWhileLeading(t *testing.T) {
	isolate(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := kubetest.WriteKubeconfig(kubeconfig, kenv.Config); err != nil {
		t.Fatal(err)
	}
	ns := kenv.Namespace(t, "tf-lead")
	_, rec, logs, err := buildArgs(t, "--kubeconfig", kubeconfig, "--namespace", ns, "--tofu", fakeTofu(t), "--replica-id", "r1")
	if err != nil || rec == nil || rec.drift == nil {
		t.Fatalf("build: %v, reconciler %v\n%s", err, rec, logs)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- rec.run(ctx) }()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(logs.String(), "terraform drift checker started") {
		select {
		case err := <-done:
			t.Fatalf("the reconciler stopped: %v\n%s", err, logs)
		case <-deadline:
			t.Fatalf("the drift checker did not start within 30s of leading:\n%s", logs)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if !strings.Contains(logs.String(), "reconciler started") {
		t.Errorf("the checker runs but the reconciler does not:\n%s", logs)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "terraform drift checker stopped") {
		t.Errorf("the checker did not stop with the leadership:\n%s", logs)
	}
}

func TestTerraformWarnsOfAWorkRootOnDisk(t *testing.T) {
	isolate(t)
	t.Setenv("OUTPOST_TOFU", "")
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := kubetest.WriteKubeconfig(kubeconfig, kenv.Config); err != nil {
		t.Fatal(err)
	}
	ns := kenv.Namespace(t, "tf-workroot")
	tofu := fakeTofu(t)
	const warning = "to a directory on disk"
	onDisk := t.TempDir()
	if mem, err := terraform.MemoryBacked(onDisk); err != nil || mem {
		t.Skipf("the test's temporary directory %s is in memory (or unknown: %v); nothing on disk to warn about", onDisk, err)
	}
	tests := []struct {
		name     string
		workRoot string
		warns    bool
	}{
		{"a work root on disk is warned about", onDisk, true},
		{"a work root in memory is not", "/dev/shm", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := os.Stat(tt.workRoot); err != nil {
				t.Skipf("no %s here", tt.workRoot)
			}
			_, _, logBuf, err := buildArgs(t, "--kubeconfig", kubeconfig, "--namespace", ns, "--tofu", tofu, "--terraform-work-root", tt.workRoot)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(logBuf.String(), warning); got != tt.warns {
				t.Fatalf("warned %t, want %t:\n%s", got, tt.warns, logBuf.String())
			}
		})
	}
}
