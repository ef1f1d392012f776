package agentcmd

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"

	"github.com/outposthq/outpost/internal/executor/terraform"
	"github.com/outposthq/outpost/internal/kube"
	"github.com/outposthq/outpost/internal/vault"
)

// defaultDriftInterval is how often a terraform release is planned to
// detect drift.
const defaultDriftInterval = time.Hour

// terraformFlags configure the terraform executor and the drift checker of
// terraform releases.
type terraformFlags struct {
	tofu          string
	namespace     string
	workRoot      string
	pluginCache   string
	env           []string
	driftInterval time.Duration
	fenceDuration time.Duration
}

func (t *terraformFlags) bind(fl *pflag.FlagSet) {
	fl.StringVar(&t.tofu, "tofu", env("OUTPOST_TOFU", ""), "OpenTofu binary for terraform tasks, an absolute path (env OUTPOST_TOFU); without it terraform tasks are not offered. A module is code: OpenTofu runs it as this agent, with its cluster identity, so give terraform its own agent whose service account may touch little but the state Secrets and Leases")
	fl.StringVar(&t.namespace, "terraform-namespace", "", "namespace of the terraform state Secrets, lock Leases and fence Leases (default: the agent's --namespace)")
	fl.StringVar(&t.workRoot, "terraform-work-root", "", "directory of the terraform runs' private working directories (default: the system's temporary directory); plan files hold variable values, sensitive ones included, so mount an in-memory emptyDir (medium: Memory) there")
	fl.StringVar(&t.pluginCache, "terraform-plugin-cache", "", "directory shared by terraform runs to cache provider plugins (default: none, each run downloads its providers)")
	fl.StringArrayVar(&t.env, "terraform-env", nil, "name of an environment variable passed to OpenTofu besides the workload-identity and proxy variables (AWS_ROLE_ARN, AZURE_CLIENT_ID, HTTPS_PROXY...); long-lived cloud keys are refused (repeatable)")
	fl.DurationVar(&t.driftInterval, "terraform-drift-interval", defaultDriftInterval, "how often each terraform release is planned to detect drift, while this replica reconciles; 0 disables")
	fl.DurationVar(&t.fenceDuration, "terraform-fence-duration", terraform.DefaultFenceDuration, "how long the fence Lease of a terraform run that stopped renewing it keeps other runs of its workspace waiting")
}

// terraformCluster is what the terraform executor needs of the cluster.
type terraformCluster struct {
	cluster *kube.Cluster
	kube    *kubeFlags
	// client fences workspaces, as the same identity as the backend.
	client kubernetes.Interface
	// holder names this replica in fence Leases.
	holder string
}

// tofuBinary returns the OpenTofu binary to run, or "" (and why) when
// terraform tasks are not to be offered: only with --tofu, which must name
// an existing executable.
func (t *terraformFlags) tofuBinary() (path, why string, err error) {
	if t.tofu == "" {
		// Never picked up from the image alone: running modules is a
		// choice the operator makes.
		return "", "terraform tasks are off: pass --tofu (env OUTPOST_TOFU) to run OpenTofu modules", nil
	}
	if !filepath.IsAbs(t.tofu) {
		return "", "", fmt.Errorf("--tofu %q: want an absolute path", t.tofu)
	}
	st, err := os.Stat(t.tofu)
	if err != nil {
		return "", "", fmt.Errorf("--tofu: %w", err)
	}
	if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return "", "", fmt.Errorf("--tofu %s: not an executable file", t.tofu)
	}
	return t.tofu, "", nil
}

// setup returns the terraform executor, or nil when terraform tasks are
// not offered: without an OpenTofu binary, or without a cluster to keep
// the state in (both logged once).
func (t *terraformFlags) setup(c *terraformCluster, resolver *vault.Resolver, log *slog.Logger) (*terraform.Executor, error) {
	if t.driftInterval < 0 {
		return nil, errors.New("--terraform-drift-interval: may not be negative")
	}
	if t.fenceDuration < 0 {
		return nil, errors.New("--terraform-fence-duration: may not be negative")
	}
	tofu, why, err := t.tofuBinary()
	if err != nil {
		return nil, err
	}
	if tofu == "" {
		log.Info("terraform tasks are not offered", "reason", why)
		return nil, nil
	}
	if c == nil {
		if t.namespace != "" {
			return nil, errors.New("--terraform-namespace needs a cluster: pass --kubeconfig, or run the agent in a pod")
		}
		log.Info("terraform tasks are not offered", "reason", "no Kubernetes cluster configured to keep the state in (no --kubeconfig and not in a pod)")
		return nil, nil
	}
	backend, err := t.backend(c)
	if err != nil {
		return nil, err
	}
	for _, dir := range []struct{ flag, path string }{{"--terraform-work-root", t.workRoot}, {"--terraform-plugin-cache", t.pluginCache}} {
		if dir.path == "" {
			continue
		}
		if st, err := os.Stat(dir.path); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("%s %s: want an existing directory", dir.flag, dir.path)
		}
	}
	pluginCache := t.pluginCache
	if pluginCache != "" {
		if pluginCache, err = filepath.Abs(pluginCache); err != nil {
			return nil, fmt.Errorf("--terraform-plugin-cache: %w", err)
		}
	}
	exec, err := terraform.New(terraform.Options{
		TofuPath:       tofu,
		KubeBackend:    backend,
		Kube:           c.client,
		Holder:         c.holder,
		FenceDuration:  t.fenceDuration,
		WorkRoot:       t.workRoot,
		Vault:          resolver,
		Env:            terraform.EnvFrom(t.envNames(), os.LookupEnv),
		PluginCacheDir: pluginCache,
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	log.Info("terraform configured", "tofu", tofu, "state_namespace", backend.Namespace)
	workRoot := cmp.Or(t.workRoot, os.TempDir())
	if mem, err := terraform.MemoryBacked(workRoot); err == nil && !mem {
		// Plan files hold the values of sensitive variables for the
		// length of a run; on a disk they outlive it in its blocks.
		log.Warn("terraform runs write plan files, which hold sensitive variable values, to a directory on disk; mount an in-memory volume there (emptyDir medium: Memory) or point --terraform-work-root at one", "work_root", workRoot)
	}
	return exec, nil
}

// backend places the state in the cluster the agent reaches: through its
// kubeconfig when it was given one, else the in-cluster configuration.
func (t *terraformFlags) backend(c *terraformCluster) (*terraform.BackendConfig, error) {
	b := &terraform.BackendConfig{Namespace: c.cluster.Namespace}
	if t.namespace != "" {
		b.Namespace = t.namespace
	}
	if c.cluster.Source != kube.SourceKubeconfig {
		return b, nil
	}
	path := c.kube.kubeconfig
	for _, name := range []string{kube.EnvKubeconfig, kube.EnvKubeconfigStd} {
		if path == "" {
			path = os.Getenv(name)
		}
	}
	if strings.Contains(path, string(filepath.ListSeparator)) {
		return nil, fmt.Errorf("kubeconfig %q: the terraform state backend reads one kubeconfig file, not a list; name one", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %q: %w", path, err)
	}
	b.ConfigPath, b.ConfigContext = abs, c.kube.context
	return b, nil
}

// envNames returns the names of the variables of the agent's environment
// passed to OpenTofu: the executor's workload-identity and proxy
// variables, then those of --terraform-env.
func (t *terraformFlags) envNames() []string {
	names := slices.Clone(terraform.IdentityEnvNames)
	for _, n := range t.env {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}
