package terraform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"
	"k8s.io/client-go/kubernetes"

	"github.com/outposthq/outpost/internal/taskspec"
	"github.com/outposthq/outpost/internal/vault"
)

// Defaults of Options.
const (
	// DefaultMaxModuleBytes caps a module archive as fetched (compressed).
	DefaultMaxModuleBytes = 20 << 20
	// DefaultMaxFileBytes caps one file of an unpacked module.
	DefaultMaxFileBytes = 5 << 20
	// DefaultMaxTotalBytes caps all files of an unpacked module together.
	DefaultMaxTotalBytes = 100 << 20
	// DefaultFenceDuration is how long a workspace's fence outlives its
	// last renewal.
	DefaultFenceDuration = 30 * time.Second
	// MinFenceDuration bounds FenceDuration from below.
	MinFenceDuration = time.Second
	// MaxHolderLength caps Holder.
	MaxHolderLength = 128
)

// Resolver resolves a vault reference to its value. *vault.Resolver
// implements it; its errors must never contain a value.
type Resolver interface {
	Resolve(ctx context.Context, ref vault.Ref) (string, error)
}

var _ Resolver = (*vault.Resolver)(nil)

// BackendConfig places every workspace's state in the kubernetes backend:
// a Secret tfstate-default-<workspace> and its lock Lease in Namespace.
type BackendConfig struct {
	// Namespace holds the state Secrets and lock Leases; normally the
	// agent's own. Required.
	Namespace string
	// ConfigPath is a kubeconfig file for the backend. Empty means the
	// in-cluster configuration (the agent's service account).
	ConfigPath string
	// ConfigContext selects a context of ConfigPath; empty means its
	// current context.
	ConfigContext string
}

// Options configures an Executor. Everything here is the agent's own
// configuration; nothing in a task can change it.
type Options struct {
	// TofuPath is the OpenTofu (or Terraform) binary to run, by absolute
	// path: never looked up on PATH. Required.
	TofuPath string
	// KubeBackend is where state lives. Without it (and without
	// LocalStateDir) every task fails with ErrNoBackend: state kept in the
	// run's temporary directory would be lost when it is removed.
	KubeBackend *BackendConfig
	// Kube is the client the executor fences workspaces with: before the
	// CLI runs on a workspace the run claims a Lease outpost-tf-<workspace>
	// in KubeBackend.Namespace and renews it while it runs (see doc.go).
	// It must act as the same identity as the backend. Required with
	// KubeBackend.
	Kube kubernetes.Interface
	// Holder identifies this agent replica in the fence Leases (with the
	// task's ID after a "/"), e.g. the pod name. Required with
	// KubeBackend.
	Holder string
	// FenceDuration is how long a fence stays valid after its last
	// renewal; the run renews it every third of that and stops itself
	// when two thirds passed without a renewal. 0 means
	// DefaultFenceDuration.
	FenceDuration time.Duration
	// LocalStateDir keeps each workspace's state in a file
	// <LocalStateDir>/<workspace>.tfstate. For tests and local
	// experiments only; ignored when KubeBackend is set.
	LocalStateDir string
	// WorkRoot is where each run's private directory (mode 0700, removed
	// after the run) is created; empty means os.TempDir(). The CLI's plan
	// file, which holds the values of the input variables sensitive ones
	// included, lives there during the run, so in a cluster it should be
	// an in-memory volume (emptyDir with medium Memory; MemoryBacked
	// tells). New removes the outpost-tf-* directories older than the
	// longest task timeout that killed runs left there.
	WorkRoot string
	// Vault resolves the references of sensitive variables. Required.
	Vault Resolver
	// Env is passed to the CLI as KEY=VALUE entries: workload-identity
	// settings such as AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE,
	// AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE,
	// GOOGLE_APPLICATION_CREDENTIALS, and proxy settings. Nothing else of
	// the agent's environment reaches the CLI, except
	// KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT when KubeBackend
	// uses the in-cluster configuration.
	//
	// Long-lived keys are refused (AWS_ACCESS_KEY_ID,
	// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AZURE_CLIENT_SECRET,
	// ARM_CLIENT_SECRET, ARM_ACCESS_KEY, GOOGLE_CREDENTIALS, and a
	// GOOGLE_APPLICATION_CREDENTIALS file of type service_account) with
	// ErrStoredCredentials. EnvFrom(IdentityEnvNames, os.LookupEnv) builds
	// it from the agent's environment.
	Env []string
	// PluginCacheDir, an absolute path, is the CLI's provider plugin cache
	// (plugin_cache_dir in the CLI configuration file, which holds nothing
	// else). Empty means no cache: providers are downloaded by each run.
	PluginCacheDir string
	// HTTPClient fetches module archives from URLs; nil means a client
	// with the system's roots and proxy settings.
	HTTPClient *http.Client
	// Logger receives one record per task and per phase. Nil discards.
	Logger *slog.Logger
	// MaxModuleBytes caps a fetched module archive; 0 means
	// DefaultMaxModuleBytes.
	MaxModuleBytes int64
	// MaxFileBytes and MaxTotalBytes cap an unpacked module; 0 means
	// DefaultMaxFileBytes and DefaultMaxTotalBytes.
	MaxFileBytes  int64
	MaxTotalBytes int64
}

// Validate checks the options and fills defaults.
func (o *Options) Validate() error {
	if o.TofuPath == "" {
		return errors.New("terraform: options: TofuPath is required")
	}
	if !filepath.IsAbs(o.TofuPath) {
		return fmt.Errorf("terraform: options: TofuPath %q: want an absolute path", o.TofuPath)
	}
	if o.Vault == nil {
		return errors.New("terraform: options: Vault is required")
	}
	if b := o.KubeBackend; b != nil {
		if !taskspec.IsDNSLabel(b.Namespace) {
			return fmt.Errorf("terraform: options: KubeBackend.Namespace %q: want a namespace name", b.Namespace)
		}
		if b.ConfigPath != "" && !filepath.IsAbs(b.ConfigPath) {
			return fmt.Errorf("terraform: options: KubeBackend.ConfigPath %q: want an absolute path", b.ConfigPath)
		}
		if b.ConfigContext != "" && b.ConfigPath == "" {
			return errors.New("terraform: options: KubeBackend.ConfigContext needs ConfigPath")
		}
		if o.Kube == nil {
			return errors.New("terraform: options: Kube is required with KubeBackend: it fences workspaces")
		}
		if o.Holder == "" || len(o.Holder) > MaxHolderLength || strings.ContainsAny(o.Holder, "/\n\r\t ") {
			return fmt.Errorf("terraform: options: Holder %q: want this replica's name (e.g. the pod name), at most %d characters without '/' or spaces; required with KubeBackend", o.Holder, MaxHolderLength)
		}
	}
	if o.FenceDuration == 0 {
		o.FenceDuration = DefaultFenceDuration
	}
	if o.FenceDuration < MinFenceDuration {
		return fmt.Errorf("terraform: options: FenceDuration %s: want at least %s", o.FenceDuration, MinFenceDuration)
	}
	if o.LocalStateDir != "" && !filepath.IsAbs(o.LocalStateDir) {
		return fmt.Errorf("terraform: options: LocalStateDir %q: want an absolute path", o.LocalStateDir)
	}
	env := map[string]string{}
	for i, kv := range o.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("terraform: options: Env[%d]: want KEY=VALUE", i)
		}
		env[k] = v
	}
	if bad := tfexec.ProhibitedEnv(env); len(bad) > 0 {
		return fmt.Errorf("terraform: options: Env sets %s, which the executor controls", bad[0])
	}
	for _, k := range []string{envCheckpoint, envCLIConfig, envHome, envDataDir, envWorkspace} {
		if _, ok := env[k]; ok {
			return fmt.Errorf("terraform: options: Env sets %s, which the executor controls", k)
		}
	}
	if err := checkIdentityEnv(env); err != nil {
		return fmt.Errorf("terraform: options: %w", err)
	}
	if o.PluginCacheDir != "" {
		if err := checkPluginCacheDir(o.PluginCacheDir); err != nil {
			return fmt.Errorf("terraform: options: %w", err)
		}
	}
	if o.MaxModuleBytes < 0 || o.MaxFileBytes < 0 || o.MaxTotalBytes < 0 {
		return errors.New("terraform: options: limits may not be negative")
	}
	if o.MaxModuleBytes == 0 {
		o.MaxModuleBytes = DefaultMaxModuleBytes
	}
	if o.MaxFileBytes == 0 {
		o.MaxFileBytes = DefaultMaxFileBytes
	}
	if o.MaxTotalBytes == 0 {
		o.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if o.WorkRoot == "" {
		o.WorkRoot = os.TempDir()
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
