package terraform_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/outposthq/outpost/internal/archive"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/terraform"
	"github.com/outposthq/outpost/internal/taskspec"
	"github.com/outposthq/outpost/internal/tofutest"
	"github.com/outposthq/outpost/internal/vault"
)

// tofuPath returns the binary hack/tofu.sh builds (`make test` builds it
// first), skipping the test loudly where it is missing.
func tofuPath(t *testing.T) string {
	t.Helper()
	return tofutest.Binary(t, "terraform executor tests")
}

// fakeVault resolves references from a map.
type fakeVault map[string]string

func (f fakeVault) Resolve(_ context.Context, ref vault.Ref) (string, error) {
	v, ok := f[ref.String()]
	if !ok {
		return "", fmt.Errorf("%s: %w", ref, vault.ErrNotFound)
	}
	return v, nil
}

// redactor records the secrets an executor registers.
type redactor struct {
	mu      sync.Mutex
	secrets []string
}

func (r *redactor) AddSecret(v string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secrets = append(r.secrets, v)
}

// entry is one tar entry of a test archive.
type entry struct {
	name, body, link string
	typ              byte
}

func tarGz(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.link}
		if typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// module is a configuration with built-in resources only, so no provider
// is downloaded.
const module = `
variable "v" {
  type = string
}

variable "pw" {
  type      = string
  sensitive = true
  default   = "none"
}

resource "terraform_data" "x" {
  input = var.v
}

resource "terraform_data" "secret" {
  input = var.pw
}

output "v" {
  value = terraform_data.x.output
}

output "pw" {
  value     = var.pw
  sensitive = true
}
`

// harness is an executor with local state in a temporary directory.
type harness struct {
	exec     *terraform.Executor
	workRoot string
	logs     *bytes.Buffer
	vault    fakeVault
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{
		workRoot: t.TempDir(),
		logs:     new(bytes.Buffer),
		vault:    fakeVault{"vault://local/db/password": "hunter2-s3cret-Zq9"},
	}
	ex, err := terraform.New(terraform.Options{
		TofuPath:      tofuPath(t),
		LocalStateDir: t.TempDir(),
		WorkRoot:      h.workRoot,
		Vault:         h.vault,
		Logger:        slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	h.exec = ex
	return h
}

// execute runs a task with spec and checks the working directory is gone.
func (h *harness) execute(t *testing.T, spec map[string]any, red *redactor) (*taskspec.TerraformResult, error) {
	t.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	task := executor.Task{ID: "t1", Kind: "terraform", Spec: raw, Attempt: 1}
	if red != nil {
		task.Redact = red
	}
	out, err := h.exec.Execute(t.Context(), task)
	left, rerr := os.ReadDir(h.workRoot)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if len(left) != 0 {
		t.Fatalf("the working directory was not removed: %s holds %v", h.workRoot, left)
	}
	if err != nil {
		return nil, err
	}
	var res taskspec.TerraformResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("result %s: %v", out, err)
	}
	return &res, nil
}

// changes lists the plan's resources as address:action.
func changes(res *taskspec.TerraformResult) string {
	var parts []string
	for _, rc := range res.Plan.Resources {
		parts = append(parts, rc.Address+":"+rc.Action)
	}
	return strings.Join(parts, ",")
}

func spec(archive []byte, vars map[string]any, extra map[string]any) map[string]any {
	s := map[string]any{"workspace": "db", "archive": archive, "variables": vars}
	for k, v := range extra {
		s[k] = v
	}
	return s
}

func TestExecuteLifecycle(t *testing.T) {
	h := newHarness(t)
	mod := tarGz(t, entry{name: "main.tf", body: module})

	t.Run("a first apply creates the resources and returns the outputs", func(t *testing.T) {
		res, err := h.execute(t, spec(mod, map[string]any{"v": "one"}, nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Changed || res.Plan.Add != 2 || res.Plan.Change != 0 || res.Plan.Destroy != 0 {
			t.Fatalf("result = %+v, want changed with 2 adds", res)
		}
		if got := changes(res); got != "terraform_data.secret:create,terraform_data.x:create" {
			t.Fatalf("addresses = %s", got)
		}
		if string(res.Outputs["v"]) != `"one"` {
			t.Fatalf("output v = %s, want \"one\"", res.Outputs["v"])
		}
		if string(res.Outputs["pw"]) != `"[REDACTED]"` {
			t.Fatalf("sensitive output pw = %s, want it redacted", res.Outputs["pw"])
		}
	})
	t.Run("a repeated apply changes nothing", func(t *testing.T) {
		res, err := h.execute(t, spec(mod, map[string]any{"v": "one"}, nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Changed || res.Plan.HasChanges || res.Plan.Add+res.Plan.Change+res.Plan.Destroy != 0 || len(res.Plan.Resources) != 0 {
			t.Fatalf("result = %+v, want no changes", res)
		}
		if string(res.Outputs["v"]) != `"one"` {
			t.Fatalf("output v = %s, want \"one\"", res.Outputs["v"])
		}
	})
	t.Run("a plan of a changed variable reports the update without making it", func(t *testing.T) {
		res, err := h.execute(t, spec(mod, map[string]any{"v": "two"}, map[string]any{"action": "plan"}), nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Changed || !res.Plan.HasChanges || res.Plan.Change != 1 || res.Outputs != nil {
			t.Fatalf("result = %+v, want one pending change and nothing changed", res)
		}
	})
	t.Run("a changed variable updates the resource", func(t *testing.T) {
		res, err := h.execute(t, spec(mod, map[string]any{"v": "two"}, nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Changed || res.Plan.Change != 1 || res.Plan.Add != 0 || res.Plan.Destroy != 0 || changes(res) != "terraform_data.x:update" {
			t.Fatalf("result = %+v, want one change of terraform_data.x", res)
		}
		if string(res.Outputs["v"]) != `"two"` {
			t.Fatalf("output v = %s, want \"two\"", res.Outputs["v"])
		}
	})
	t.Run("destroy removes every resource", func(t *testing.T) {
		res, err := h.execute(t, spec(mod, map[string]any{"v": "two"}, map[string]any{"action": "destroy"}), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Changed || res.Plan.Destroy != 2 || res.Plan.Add != 0 {
			t.Fatalf("result = %+v, want 2 destroys", res)
		}
		again, err := h.execute(t, spec(mod, map[string]any{"v": "two"}, map[string]any{"action": "destroy"}), nil)
		if err != nil {
			t.Fatal(err)
		}
		if again.Changed || again.Plan.Destroy != 0 {
			t.Fatalf("second destroy = %+v, want nothing left to destroy", again)
		}
	})
}

func TestExecuteSensitiveVariables(t *testing.T) {
	h := newHarness(t)
	secret := h.vault["vault://local/db/password"]
	sensitive := map[string]any{"sensitive_variables": map[string]string{"pw": "vault://local/db/password"}}

	t.Run("a resolved secret reaches the module but no result or log", func(t *testing.T) {
		red := new(redactor)
		mod := tarGz(t, entry{name: "main.tf", body: module})
		raw, err := json.Marshal(spec(mod, map[string]any{"v": "one"}, sensitive))
		if err != nil {
			t.Fatal(err)
		}
		out, err := h.exec.Execute(t.Context(), executor.Task{ID: "t1", Spec: raw, Redact: red})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), secret) || strings.Contains(h.logs.String(), secret) {
			t.Fatalf("the secret leaked: result %s, logs %s", out, h.logs)
		}
		if !strings.Contains(string(out), `"pw":"[REDACTED]"`) {
			t.Fatalf("result %s lacks the redacted sensitive output", out)
		}
		if len(red.secrets) != 1 || red.secrets[0] != secret {
			t.Fatalf("redactor got %d secrets, want the resolved one", len(red.secrets))
		}
		// The secret did reach the module: the planned change of the
		// resource that holds it shows when the value changes back.
		res, err := h.execute(t, spec(mod, map[string]any{"v": "one"}, nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		if changes(res) != "terraform_data.secret:update" {
			t.Fatalf("without the secret, addresses = %v, want terraform_data.secret to change", res.Plan.Resources)
		}
	})
	t.Run("a secret in the CLI's diagnostics is redacted from the error", func(t *testing.T) {
		// A module that forgot to mark its variable sensitive, so the CLI
		// prints the value in its error.
		leaky := `
variable "pw" {
  type = string
}

resource "terraform_data" "x" {
  input = tonumber(var.pw)
}
`
		mod := tarGz(t, entry{name: "main.tf", body: leaky})
		_, err := h.execute(t, spec(mod, nil, sensitive), new(redactor))
		if !errors.Is(err, terraform.ErrCLI) {
			t.Fatalf("error = %v, want ErrCLI", err)
		}
		// The CLI did print the value (so this test can fail): it shows
		// where the redaction took its place.
		if !strings.Contains(err.Error(), `var.pw is "[REDACTED]"`) {
			t.Fatalf("error = %v, want the CLI's diagnostic with the value redacted", err)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(h.logs.String(), secret) {
			t.Fatalf("the secret leaked: error %v, logs %s", err, h.logs)
		}
	})
	t.Run("a missing secret fails the task for good before anything runs", func(t *testing.T) {
		mod := tarGz(t, entry{name: "main.tf", body: module})
		missing := map[string]any{"sensitive_variables": map[string]string{"pw": "vault://local/db/nope"}}
		_, err := h.execute(t, spec(mod, map[string]any{"v": "x"}, missing), nil)
		if !errors.Is(err, terraform.ErrVariable) || !executor.IsTerminal(err) || !strings.Contains(err.Error(), "sensitive_variables.pw") {
			t.Fatalf("error = %v, want a terminal ErrVariable naming the variable", err)
		}
	})
}

func TestExecuteRefusesModules(t *testing.T) {
	h := newHarness(t)
	main := entry{name: "main.tf", body: module}
	tests := []struct {
		name    string
		archive []byte
		extra   map[string]any
		want    error
		reason  string
	}{
		{"an entry escaping the archive is refused", tarGz(t, main, entry{name: "../evil.tf", body: "x"}), nil, archive.ErrUnsafePath, "evil.tf"},
		{"an absolute entry is refused", tarGz(t, main, entry{name: "/etc/evil.tf", body: "x"}), nil, archive.ErrUnsafePath, "evil.tf"},
		{"a symbolic link is refused", tarGz(t, main, entry{name: "link.tf", typ: tar.TypeSymlink, link: "/etc/passwd"}), nil, archive.ErrUnsupportedEntry, "link.tf"},
		{"a hard link is refused", tarGz(t, main, entry{name: "hard.tf", typ: tar.TypeLink, link: "main.tf"}), nil, archive.ErrUnsupportedEntry, "hard.tf"},
		{"an override file is refused", tarGz(t, main, entry{name: "backend_override.tf", body: `terraform {}`}), nil, terraform.ErrModule, "override file"},
		{"an archive that is not gzip is refused", []byte("not an archive"), nil, archive.ErrCorrupt, "module archive refused"},
		{"a path without configuration is refused", tarGz(t, main), map[string]any{"path": "sub"}, terraform.ErrModule, `no .tf or .tf.json file at path "sub"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.execute(t, spec(tt.archive, map[string]any{"v": "x"}, tt.extra), nil)
			if !errors.Is(err, tt.want) || !errors.Is(err, terraform.ErrModule) || !executor.IsTerminal(err) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error = %v, want a terminal ErrModule wrapping %v and saying %q", err, tt.want, tt.reason)
			}
		})
	}
	t.Run("a module in a subdirectory runs", func(t *testing.T) {
		mod := tarGz(t, entry{name: "README.md", body: "hi"}, entry{name: "modules/app/main.tf", body: module})
		res, err := h.execute(t, spec(mod, map[string]any{"v": "sub"}, map[string]any{"path": "modules/app", "workspace": "sub"}), nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(res.Outputs["v"]) != `"sub"` {
			t.Fatalf("output v = %s", res.Outputs["v"])
		}
	})
}

func TestExecuteRefusesWithoutBackend(t *testing.T) {
	ex, err := terraform.New(terraform.Options{TofuPath: "/nonexistent/tofu", Vault: fakeVault{}})
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte(`{"workspace":"db","archive":"` + "H4sIAAAAAAAA" + `"}`)
	_, err = ex.Execute(t.Context(), executor.Task{ID: "t", Spec: raw})
	if !errors.Is(err, terraform.ErrNoBackend) || !executor.IsTerminal(err) {
		t.Fatalf("error = %v, want a terminal ErrNoBackend", err)
	}
}

func TestExecuteRefusesInvalidSpecs(t *testing.T) {
	ex, err := terraform.New(terraform.Options{TofuPath: "/nonexistent/tofu", Vault: fakeVault{}, LocalStateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ex.Execute(t.Context(), executor.Task{ID: "t", Spec: []byte(`{"workspace":"db","url":"http://x/m.tgz"}`)})
	if !executor.IsTerminal(err) || !strings.Contains(err.Error(), "url") {
		t.Fatalf("error = %v, want a terminal error naming url", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name   string
		opts   terraform.Options
		reason string
	}{
		{"a binary is required", terraform.Options{Vault: fakeVault{}}, "TofuPath is required"},
		{"the binary is never looked up on PATH", terraform.Options{TofuPath: "tofu", Vault: fakeVault{}}, "want an absolute path"},
		{"a vault is required", terraform.Options{TofuPath: "/bin/tofu"}, "Vault is required"},
		{"a backend needs a namespace", terraform.Options{TofuPath: "/bin/tofu", Vault: fakeVault{}, KubeBackend: &terraform.BackendConfig{}}, "KubeBackend.Namespace"},
		{"variables cannot be smuggled through Env", terraform.Options{TofuPath: "/bin/tofu", Vault: fakeVault{}, Env: []string{"TF_VAR_x=1"}}, "TF_VAR_x"},
		{"Env cannot replace the CLI configuration", terraform.Options{TofuPath: "/bin/tofu", Vault: fakeVault{}, Env: []string{"TF_CLI_CONFIG_FILE=/x"}}, "TF_CLI_CONFIG_FILE"},
		{"Env entries need a value", terraform.Options{TofuPath: "/bin/tofu", Vault: fakeVault{}, Env: []string{"AWS_ROLE_ARN"}}, "Env[0]"},
		{"a backend needs a client for the fence", terraform.Options{TofuPath: "/bin/tofu", Vault: fakeVault{}, KubeBackend: &terraform.BackendConfig{Namespace: "outpost"}, Holder: "agent-0"}, "Kube is required"},
		{"a backend needs the replica's name", terraform.Options{TofuPath: "/bin/tofu", Vault: fakeVault{}, KubeBackend: &terraform.BackendConfig{Namespace: "outpost"}, Kube: fake.NewClientset()}, "Holder"},
		{"a replica's name has no slash", terraform.Options{TofuPath: "/bin/tofu", Vault: fakeVault{}, KubeBackend: &terraform.BackendConfig{Namespace: "outpost"}, Kube: fake.NewClientset(), Holder: "a/b"}, "Holder"},
		{"a fence lasts at least a second", terraform.Options{TofuPath: "/bin/tofu", Vault: fakeVault{}, FenceDuration: time.Millisecond}, "FenceDuration"},
		{"the plugin cache is an absolute path", terraform.Options{TofuPath: "/bin/tofu", Vault: fakeVault{}, PluginCacheDir: "cache"}, "PluginCacheDir"},
		{"the plugin cache path cannot inject configuration", terraform.Options{TofuPath: "/bin/tofu", Vault: fakeVault{}, PluginCacheDir: "/x\"\ncredentials \"h\" {"}, "PluginCacheDir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error = %v, want one saying %q", err, tt.reason)
			}
		})
	}
}

func TestExecuteCancelled(t *testing.T) {
	h := newHarness(t)
	slow := `
resource "terraform_data" "slow" {
  provisioner "local-exec" {
    command = "sleep 2"
  }
}
`
	mod := tarGz(t, entry{name: "main.tf", body: slow})
	raw, err := json.Marshal(spec(mod, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a cancelled apply fails retryably and leaves no working directory", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err := h.exec.Execute(ctx, executor.Task{ID: "t", Spec: raw})
		if !errors.Is(err, context.DeadlineExceeded) || executor.IsTerminal(err) {
			t.Fatalf("error = %v, want a retryable deadline error", err)
		}
		if left, _ := os.ReadDir(h.workRoot); len(left) != 0 {
			t.Fatalf("the working directory was not removed: %v", left)
		}
	})
	t.Run("the next attempt completes, and then nothing is left to do", func(t *testing.T) {
		// The interrupted resource may be tainted and so replaced.
		res, err := h.execute(t, spec(mod, nil, nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Changed || res.Plan.Add != 1 {
			t.Fatalf("result = %+v, want the resource created", res)
		}
		again, err := h.execute(t, spec(mod, nil, nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		if again.Changed || again.Plan.HasChanges {
			t.Fatalf("result = %+v, want no changes", again)
		}
	})
}

func TestExecuteCapsOutputs(t *testing.T) {
	h := newHarness(t)
	big := `
output "a" {
  value = "small"
}

output "big" {
  value = format("%070000d", 0)
}

output "z" {
  value = "after"
}
`
	mod := tarGz(t, entry{name: "main.tf", body: big})
	res, err := h.execute(t, spec(mod, nil, map[string]any{"workspace": "big"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Outputs) != 1 || string(res.Outputs["a"]) != `"small"` || strings.Join(res.OutputsOmitted, ",") != "big,z" {
		t.Fatalf("outputs %v, omitted %v; want a kept and big, z left out", res.Outputs, res.OutputsOmitted)
	}
}
