package terraform_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/outposthq/outpost/internal/executor/terraform"
)

// dumper writes the environment and the CLI configuration file its
// resource is created with into var.dir.
const dumper = `
variable "dir" {
  type = string
}

resource "terraform_data" "dump" {
  provisioner "local-exec" {
    command = "env > ${var.dir}/env && cat \"$TF_CLI_CONFIG_FILE\" > ${var.dir}/cli.tfrc"
  }
}
`

func TestExecuteEnvironment(t *testing.T) {
	tofu := tofuPath(t)
	// The agent's own environment holds keys that must not reach the CLI.
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEAGENTKEY")
	t.Setenv("OUTPOST_AGENT_ONLY", "agent-private")
	gcp := filepath.Join(t.TempDir(), "gcp.json")
	if err := os.WriteFile(gcp, []byte(`{"type":"external_account","audience":"//iam.googleapis.com/x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	agentEnv := map[string]string{
		"AWS_ROLE_ARN":                   "arn:aws:iam::123456789012:role/outpost",
		"AWS_WEB_IDENTITY_TOKEN_FILE":    "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
		"AZURE_CLIENT_ID":                "00000000-0000-0000-0000-000000000001",
		"GOOGLE_APPLICATION_CREDENTIALS": gcp,
		"NO_PROXY":                       "10.0.0.0/8",
		"AWS_SECRET_ACCESS_KEY":          "not-an-identity-setting",
	}
	passed := terraform.EnvFrom(terraform.IdentityEnvNames, func(k string) (string, bool) { v, ok := agentEnv[k]; return v, ok })
	if len(passed) != 5 || slices.ContainsFunc(passed, func(kv string) bool { return strings.HasPrefix(kv, "AWS_SECRET_ACCESS_KEY=") }) {
		t.Fatalf("EnvFrom = %v, want the 5 identity settings only", passed)
	}
	cache := t.TempDir()
	out := t.TempDir()
	h := &harness{workRoot: t.TempDir()}
	var err error
	h.exec, err = terraform.New(terraform.Options{
		TofuPath: tofu, LocalStateDir: t.TempDir(), WorkRoot: h.workRoot, Vault: fakeVault{},
		Env: passed, PluginCacheDir: cache,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.execute(t, spec(tarGz(t, entry{name: "main.tf", body: dumper}), map[string]any{"dir": out}, nil), nil); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(out, "env"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		seen[k] = v
	}
	t.Run("the CLI sees every variable passed through", func(t *testing.T) {
		for _, kv := range passed {
			k, v, _ := strings.Cut(kv, "=")
			if seen[k] != v {
				t.Errorf("%s = %q in the CLI's environment, want %q", k, seen[k], v)
			}
		}
	})
	t.Run("the CLI sees nothing else of the agent's environment", func(t *testing.T) {
		// What the executor, terraform-exec, the CLI and the shell of the
		// provisioner set themselves.
		own := []string{
			"CHECKPOINT_DISABLE", "HOME", "TF_CLI_CONFIG_FILE", "TF_DATA_DIR", "TF_IN_AUTOMATION",
			"TF_APPEND_USER_AGENT", "TF_LOG", "TF_LOG_CORE", "TF_LOG_PATH", "TF_LOG_PROVIDER",
			"PWD", "OLDPWD", "SHLVL", "_",
		}
		for k := range seen {
			if slices.Contains(own, k) || slices.ContainsFunc(passed, func(kv string) bool { return strings.HasPrefix(kv, k+"=") }) {
				continue
			}
			t.Errorf("the CLI's environment holds %s, which was not passed through", k)
		}
		for _, k := range []string{"AWS_ACCESS_KEY_ID", "OUTPOST_AGENT_ONLY", "AWS_SECRET_ACCESS_KEY"} {
			if _, ok := seen[k]; ok {
				t.Errorf("%s reached the CLI", k)
			}
		}
	})
	t.Run("the CLI configuration holds the plugin cache and nothing else", func(t *testing.T) {
		cfg, err := os.ReadFile(filepath.Join(out, "cli.tfrc"))
		if err != nil {
			t.Fatal(err)
		}
		if want := `plugin_cache_dir = "` + cache + `"` + "\n"; string(cfg) != want {
			t.Fatalf("CLI configuration = %q, want %q", cfg, want)
		}
	})
}

func TestOptionsRefuseStoredCredentials(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key.json")
	if err := os.WriteFile(key, []byte(`{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----\nMIIE\n"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	federated := filepath.Join(dir, "wif.json")
	if err := os.WriteFile(federated, []byte(`{"type":"external_account"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		env    string
		reason string
	}{
		{"an AWS access key is refused", "AWS_ACCESS_KEY_ID=AKIA", "AWS_ACCESS_KEY_ID"},
		{"an AWS secret key is refused", "AWS_SECRET_ACCESS_KEY=x", "AWS_SECRET_ACCESS_KEY"},
		{"an AWS session token is refused", "AWS_SESSION_TOKEN=x", "AWS_SESSION_TOKEN"},
		{"an Azure client secret is refused", "AZURE_CLIENT_SECRET=x", "AZURE_CLIENT_SECRET"},
		{"an azurerm client secret is refused", "ARM_CLIENT_SECRET=x", "ARM_CLIENT_SECRET"},
		{"an azurerm storage key is refused", "ARM_ACCESS_KEY=x", "ARM_ACCESS_KEY"},
		{"inline Google credentials are refused", "GOOGLE_CREDENTIALS={}", "GOOGLE_CREDENTIALS"},
		{"a Google service account key file is refused", "GOOGLE_APPLICATION_CREDENTIALS=" + key, "use workload identity federation (type external_account)"},
		{"a Google credential file that cannot be read is refused", "GOOGLE_APPLICATION_CREDENTIALS=" + filepath.Join(dir, "missing.json"), "cannot check"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := terraform.Options{TofuPath: "/bin/tofu", Vault: fakeVault{}, Env: []string{tt.env}}
			err := opts.Validate()
			if !errors.Is(err, terraform.ErrStoredCredentials) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error = %v, want ErrStoredCredentials saying %q", err, tt.reason)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Fatalf("error %v quotes the key", err)
			}
		})
	}
	t.Run("a Google workload identity federation configuration is accepted", func(t *testing.T) {
		opts := terraform.Options{TofuPath: "/bin/tofu", Vault: fakeVault{}, Env: []string{"GOOGLE_APPLICATION_CREDENTIALS=" + federated}}
		if err := opts.Validate(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestEnvFrom(t *testing.T) {
	lookup := func(k string) (string, bool) {
		v, ok := map[string]string{"A": "1", "C": "", "D": "x=y"}[k]
		return v, ok
	}
	got := strings.Join(terraform.EnvFrom([]string{"A", "B", "C", "D"}, lookup), "|")
	if got != "A=1|C=|D=x=y" {
		t.Fatalf("EnvFrom = %s, want the set names in order, empty values kept", got)
	}
}
