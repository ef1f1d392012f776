package agentcmd

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/outposthq/outpost/internal/agent"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/helm"
	"github.com/outposthq/outpost/internal/executor/manifests"
	"github.com/outposthq/outpost/internal/kube"
	"github.com/outposthq/outpost/internal/seal/sealk8s"
	"github.com/outposthq/outpost/internal/taskspec"
	"github.com/outposthq/outpost/internal/vault"
	"github.com/outposthq/outpost/internal/vault/k8ssecret"
)

// kubeFlags point the agent at the cluster it deploys into and configure
// the manifests executor.
type kubeFlags struct {
	kubeconfig      string
	context         string
	namespace       string
	identitySecret  string
	keySecret       string
	keyRefresh      time.Duration
	qps             float32
	burst           int
	denyKinds       []string
	allowPrivileged bool
}

func (k *kubeFlags) bind(fl *pflag.FlagSet) {
	fl.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to deploy into (env "+kube.EnvKubeconfig+" or "+kube.EnvKubeconfigStd+"); in a pod the service account is used without it")
	fl.StringVar(&k.context, "kube-context", "", "kubeconfig context to use instead of the current one")
	fl.StringVar(&k.namespace, "namespace", "", "the agent's own namespace, holding its identity and inventories (default: env "+kube.EnvNamespace+", else the pod's namespace, else "+kube.DefaultNamespace+")")
	fl.StringVar(&k.identitySecret, "identity-secret", env("OUTPOST_IDENTITY_SECRET", agent.DefaultIdentitySecret), "Secret in the agent's namespace that keeps its identity when Kubernetes is configured (env OUTPOST_IDENTITY_SECRET)")
	fl.StringVar(&k.keySecret, "environment-key-secret", env("OUTPOST_ENVIRONMENT_KEY_SECRET", sealk8s.DefaultName), "Secret in the agent's namespace that keeps the environment's private age keys, which open sealed secrets (env OUTPOST_ENVIRONMENT_KEY_SECRET); replicas of one agent must share it")
	fl.DurationVar(&k.keyRefresh, "environment-key-refresh", agent.DefaultKeyRefreshInterval, "how often the agent reads the environment key Secret again and publishes its public keys, so that a key rotated by another replica or an operator reaches the hub")
	fl.Float32Var(&k.qps, "kube-qps", 0, fmt.Sprintf("Kubernetes API requests per second, sustained (default %d)", manifests.DefaultQPS))
	fl.IntVar(&k.burst, "kube-burst", 0, fmt.Sprintf("Kubernetes API requests in a burst (default %d)", manifests.DefaultBurst))
	fl.StringSliceVar(&k.denyKinds, "deny-kind", nil, "kinds manifests tasks may never apply, added to the default deny list: group/Kind, Kind (core group) or group/* (repeatable, comma-separated)")
	fl.BoolVar(&k.allowPrivileged, "allow-privileged", false, "let manifests tasks apply privileged pods (privileged containers, host namespaces, hostPath, SYS_ADMIN)")
}

// kubeSetup is what a configured cluster adds to the agent.
type kubeSetup struct {
	identity agent.IdentityStore
	kinds    map[string]executor.Executor
	// keys is the environment keyring, also kinds' secret executor.
	keys *environmentKeyring
	// cluster and client reach the cluster, for the reconciler.
	cluster *kube.Cluster
	client  kubernetes.Interface
	// taskClient is the client of tasks that call the API server a few
	// times each (secret tasks, terraform fences), with the manifests
	// executor's rate limit.
	taskClient kubernetes.Interface
	// vault holds the providers that read the cluster, by provider name.
	vault map[string]vault.Provider
	// newHelm builds the helm executor once the resolver, which needs the
	// cluster's vault providers, exists.
	newHelm func(resolver *vault.Resolver, client *http.Client) (executor.Executor, error)
}

// setup finds the cluster. Without one it returns ok=false and the agent
// runs as on a VM: file identity, no manifests executor.
func (k *kubeFlags) setup(log *slog.Logger) (kubeSetup, bool, error) {
	cluster, err := kube.Load(kube.Options{
		Kubeconfig: k.kubeconfig,
		Context:    k.context,
		Namespace:  k.namespace,
		UserAgent:  "outpost-agent/" + Version,
		QPS:        k.qps,
		Burst:      k.burst,
	})
	if errors.Is(err, kube.ErrNotConfigured) {
		if k.namespace != "" || k.identitySecret != agent.DefaultIdentitySecret || k.keySecret != sealk8s.DefaultName || len(k.denyKinds) > 0 || k.allowPrivileged {
			return kubeSetup{}, false, errors.New("--namespace, --identity-secret, --environment-key-secret, --deny-kind and --allow-privileged need a cluster: pass --kubeconfig, or run the agent in a pod")
		}
		return kubeSetup{}, false, nil
	}
	if err != nil {
		return kubeSetup{}, false, fmt.Errorf("kubernetes: %w", err)
	}
	if errs := validation.IsDNS1123Subdomain(k.identitySecret); len(errs) > 0 {
		return kubeSetup{}, false, fmt.Errorf("--identity-secret %q is not a valid Secret name: %s", k.identitySecret, strings.Join(errs, "; "))
	}
	if k.keySecret == k.identitySecret {
		return kubeSetup{}, false, fmt.Errorf("--environment-key-secret and --identity-secret both name %q; give them different Secrets", k.keySecret)
	}
	client, err := kubernetes.NewForConfig(cluster.Config)
	if err != nil {
		return kubeSetup{}, false, fmt.Errorf("kubernetes client: %w", err)
	}
	// Secret and terraform tasks get the manifests executor's rate limit,
	// not client-go's default of 5 requests per second: a secret task
	// makes about seven requests (keyring, Secret, workload lists,
	// patches), so the default alone held each one for 0.8 s
	// (bench/secrets); a terraform task renews its fence Lease, and 20 at
	// once were let through 5 a second (bench/terraform).
	secretCfg := rest.CopyConfig(cluster.Config)
	if secretCfg.QPS == 0 {
		secretCfg.QPS, secretCfg.Burst = manifests.DefaultQPS, manifests.DefaultBurst
	}
	secretClient, err := kubernetes.NewForConfig(secretCfg)
	if err != nil {
		return kubeSetup{}, false, fmt.Errorf("kubernetes client: %w", err)
	}
	keyStore, err := sealk8s.New(sealk8s.Options{Client: secretClient.CoreV1(), Namespace: cluster.Namespace, Name: k.keySecret})
	if err != nil {
		return kubeSetup{}, false, fmt.Errorf("--environment-key-secret: %w", err)
	}
	keys := &environmentKeyring{store: keyStore, client: secretClient, where: cluster.Namespace + "/" + k.keySecret, log: log}
	extra, err := manifests.ParseDenyRules(strings.Join(k.denyKinds, ","))
	if err != nil {
		return kubeSetup{}, false, fmt.Errorf("--deny-kind: %w", err)
	}
	exec, err := manifests.New(manifests.Options{
		Config:          cluster.Config,
		AgentNamespace:  cluster.Namespace,
		Logger:          log,
		Deny:            append(manifests.DefaultDeny(), extra...),
		AllowPrivileged: k.allowPrivileged,
	})
	if err != nil {
		return kubeSetup{}, false, err
	}
	secrets, err := k8ssecret.New(k8ssecret.Options{Client: client.CoreV1(), Namespace: cluster.Namespace})
	if err != nil {
		return kubeSetup{}, false, err
	}
	log.Info("kubernetes configured", "source", cluster.Source, "server", cluster.Config.Host,
		"namespace", cluster.Namespace, "identity_secret", k.identitySecret, "environment_key_secret", k.keySecret)
	return kubeSetup{
		identity:   agent.SecretIdentity{Client: client, Namespace: cluster.Namespace, Name: k.identitySecret},
		kinds:      map[string]executor.Executor{taskspec.KindManifests: exec, taskspec.KindSecret: keys},
		keys:       keys,
		cluster:    &cluster,
		client:     client,
		taskClient: secretClient,
		vault:      map[string]vault.Provider{k8ssecret.ProviderName: secrets},
		newHelm: func(resolver *vault.Resolver, client *http.Client) (executor.Executor, error) {
			return helm.New(helm.Options{
				Config:          cluster.Config,
				Vault:           resolver,
				HTTPClient:      client,
				Logger:          log,
				Deny:            append(manifests.DefaultDeny(), extra...),
				AllowPrivileged: k.allowPrivileged,
			})
		},
	}, true, nil
}

// identityFileChosen reports whether the operator named an identity file,
// which then wins over the Secret (an agent on a VM deploying into a
// remote cluster may keep its identity locally).
func identityFileChosen(fl *pflag.FlagSet) bool {
	return fl.Changed("identity-file") || os.Getenv("OUTPOST_IDENTITY_FILE") != ""
}
