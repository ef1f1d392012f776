package terraform

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// ErrStoredCredentials reports a long-lived cloud key in Options.Env: the
// CLI gets workload-identity settings only.
var ErrStoredCredentials = errors.New("stored cloud credentials")

// IdentityEnvNames are the variables of the agent's own environment that
// reach the CLI (through EnvFrom and Options.Env): workload-identity
// settings of AWS (IRSA), Azure (Workload Identity) and Google Cloud
// (workload identity federation), and proxy settings. None of them is a
// secret: tokens are files the platform projects and rotates.
var IdentityEnvNames = []string{
	"AWS_ROLE_ARN",
	"AWS_WEB_IDENTITY_TOKEN_FILE",
	"AWS_ROLE_SESSION_NAME",
	"AWS_REGION",
	"AWS_DEFAULT_REGION",
	"AWS_STS_REGIONAL_ENDPOINTS",
	"AZURE_CLIENT_ID",
	"AZURE_TENANT_ID",
	"AZURE_FEDERATED_TOKEN_FILE",
	"AZURE_AUTHORITY_HOST",
	"ARM_USE_OIDC",
	"ARM_USE_AKS_WORKLOAD_IDENTITY",
	"ARM_CLIENT_ID",
	"ARM_TENANT_ID",
	"ARM_SUBSCRIPTION_ID",
	"ARM_OIDC_TOKEN_FILE_PATH",
	"GOOGLE_APPLICATION_CREDENTIALS",
	"GOOGLE_CLOUD_PROJECT",
	"HTTPS_PROXY",
	"HTTP_PROXY",
	"NO_PROXY",
	"https_proxy",
	"http_proxy",
	"no_proxy",
}

// storedKeys are variables that carry long-lived cloud secrets.
var storedKeys = []string{
	"AWS_ACCESS_KEY_ID",
	"AWS_SECRET_ACCESS_KEY",
	"AWS_SESSION_TOKEN",
	"AZURE_CLIENT_SECRET",
	"ARM_CLIENT_SECRET",
	"ARM_ACCESS_KEY",
	"GOOGLE_CREDENTIALS",
}

// envGoogleCredentials names a Google credential configuration file.
const envGoogleCredentials = "GOOGLE_APPLICATION_CREDENTIALS" //nolint:gosec // a variable name, not a credential

// maxCredentialConfigBytes caps the Google credential configuration read
// to check its type.
const maxCredentialConfigBytes = 1 << 20

// EnvFrom returns KEY=VALUE entries for the names lookup finds, in the
// order of names; with IdentityEnvNames and os.LookupEnv it builds
// Options.Env from the agent's own environment.
func EnvFrom(names []string, lookup func(string) (string, bool)) []string {
	var env []string
	for _, name := range names {
		if v, ok := lookup(name); ok {
			env = append(env, name+"="+v)
		}
	}
	return env
}

// checkIdentityEnv refuses long-lived cloud keys: the variables that carry
// them, and a Google credential file holding a service account key.
func checkIdentityEnv(env map[string]string) error {
	for _, k := range storedKeys {
		if _, ok := env[k]; ok {
			return fmt.Errorf("%w: Env sets %s, a long-lived key; give the agent a workload identity instead (AWS IRSA, Azure Workload Identity, Google workload identity federation)", ErrStoredCredentials, k)
		}
	}
	path, ok := env[envGoogleCredentials]
	if !ok {
		return nil
	}
	typ, err := credentialType(path)
	if err != nil {
		return fmt.Errorf("%w: Env sets %s=%s: %w", ErrStoredCredentials, envGoogleCredentials, path, err)
	}
	if typ == "service_account" {
		return fmt.Errorf("%w: %s=%s is a service account key; use workload identity federation (type external_account)", ErrStoredCredentials, envGoogleCredentials, path)
	}
	return nil
}

// credentialType reads the "type" of a Google credential configuration
// file. Nothing else of the file reaches an error.
func credentialType(path string) (string, error) {
	f, err := os.Open(path) //nolint:gosec // the agent's own configuration names the file
	if err != nil {
		return "", fmt.Errorf("cannot check the credential configuration: %w", err)
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, maxCredentialConfigBytes+1))
	if err != nil {
		return "", fmt.Errorf("cannot check the credential configuration: %w", err)
	}
	if len(data) > maxCredentialConfigBytes {
		return "", fmt.Errorf("credential configuration larger than %d bytes", maxCredentialConfigBytes)
	}
	var doc struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(data, &doc) != nil {
		return "", errors.New("credential configuration is not a JSON object")
	}
	return doc.Type, nil
}

// cliConfigContent is the CLI configuration file: the plugin cache
// directory when there is one, nothing else (no credentials).
func cliConfigContent(pluginCacheDir string) []byte {
	if pluginCacheDir == "" {
		return nil
	}
	return []byte("plugin_cache_dir = " + strconv.Quote(pluginCacheDir) + "\n")
}

// checkPluginCacheDir accepts an absolute path that is a plain HCL string
// once quoted: no quotes, backslashes, template sequences or control
// characters.
func checkPluginCacheDir(dir string) error {
	if !strings.HasPrefix(dir, "/") {
		return fmt.Errorf("PluginCacheDir %q: want an absolute path", dir)
	}
	if strings.ContainsAny(dir, "\"\\") || strings.Contains(dir, "${") || strings.Contains(dir, "%{") {
		return fmt.Errorf("PluginCacheDir %q: want a path without quotes, backslashes, ${ or %%{", dir)
	}
	for _, c := range dir {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("PluginCacheDir %q: want a path without control characters", dir)
		}
	}
	return nil
}
