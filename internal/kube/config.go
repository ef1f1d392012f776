package kube

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Defaults, each overridable through Options.
const (
	// DefaultServiceAccountDir is where Kubernetes mounts a pod's service
	// account token, CA bundle and namespace.
	DefaultServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	// DefaultNamespace is the agent's namespace when nothing names one.
	DefaultNamespace = "outpost-system"

	// EnvKubeconfig names a kubeconfig for the agent only; EnvKubeconfigStd
	// is the one kubectl reads. Both may hold a path list.
	EnvKubeconfig    = "OUTPOST_KUBECONFIG"
	EnvKubeconfigStd = "KUBECONFIG"
	// EnvNamespace names the agent's namespace.
	EnvNamespace = "OUTPOST_NAMESPACE"

	envServiceHost = "KUBERNETES_SERVICE_HOST"
	envServicePort = "KUBERNETES_SERVICE_PORT"

	// maxServiceAccountFile bounds what is read from the service account
	// mount; a projected token is a few KiB.
	maxServiceAccountFile = 64 << 10
)

// ErrNotConfigured means neither a kubeconfig nor an in-cluster service
// account was found: the agent runs without Kubernetes.
var ErrNotConfigured = errors.New("kube: no kubeconfig given and not running in a Kubernetes pod")

// Source says where a Cluster's config came from.
type Source string

// Sources of a Cluster.
const (
	SourceKubeconfig Source = "kubeconfig"
	SourceInCluster  Source = "in-cluster"
)

// Options say where to look for the cluster.
type Options struct {
	// Kubeconfig is a kubeconfig path (or a path list). When empty, env
	// OUTPOST_KUBECONFIG and then KUBECONFIG are consulted; when those are
	// empty too, the in-cluster service account is used if there is one.
	// The user's ~/.kube/config is never picked up implicitly, so an agent
	// on a developer's VM does not deploy into whatever cluster kubectl
	// points at.
	Kubeconfig string
	// Context overrides the kubeconfig's current context.
	Context string
	// Namespace is the agent's own namespace. When empty: env
	// OUTPOST_NAMESPACE, else the pod's namespace from the service account
	// mount, else DefaultNamespace.
	Namespace string
	// UserAgent is sent with every request, e.g. "outpost-agent/1.2.3".
	UserAgent string
	// QPS and Burst are client-side rate limits. Zero leaves them to each
	// client's constructor: the manifests executor raises them to its own
	// defaults, other clients keep client-go's.
	QPS   float32
	Burst int
	// Getenv reads the environment; os.Getenv when nil.
	Getenv func(string) string
	// ServiceAccountDir is the service account mount
	// (DefaultServiceAccountDir when empty).
	ServiceAccountDir string
}

// Validate fills defaults and checks the options.
func (o *Options) Validate() error {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.ServiceAccountDir == "" {
		o.ServiceAccountDir = DefaultServiceAccountDir
	}
	if o.QPS < 0 || o.Burst < 0 {
		return errors.New("kube: QPS and Burst must not be negative")
	}
	if o.QPS > 0 && o.Burst == 0 {
		// client-go would allow bursts of 10 whatever the rate.
		o.Burst = int(2 * o.QPS)
	}
	if o.UserAgent == "" {
		o.UserAgent = "outpost-agent"
	}
	return nil
}

// Cluster is a resolved connection to a cluster.
type Cluster struct {
	// Config is shared by every client of the agent; copy it
	// (rest.CopyConfig) before changing it.
	Config *rest.Config
	// Namespace is the agent's own namespace: its identity, inventories
	// and leases live there.
	Namespace string
	// Source says whether Config came from a kubeconfig or the pod.
	Source Source
}

// Load finds the cluster: an explicit kubeconfig first, else the pod's
// service account when KUBERNETES_SERVICE_HOST/PORT are set and its token is
// mounted. It returns ErrNotConfigured when there is neither.
func Load(opts Options) (Cluster, error) {
	if err := opts.Validate(); err != nil {
		return Cluster{}, err
	}
	var (
		c   Cluster
		err error
	)
	path := firstNonEmpty(opts.Kubeconfig, opts.Getenv(EnvKubeconfig), opts.Getenv(EnvKubeconfigStd))
	if path == "" && opts.Context != "" {
		return Cluster{}, errors.New("kube: a kube context was given but no kubeconfig; pass --kubeconfig too or drop the context")
	}
	switch {
	case path != "":
		c.Config, err = fromKubeconfig(path, opts.Context)
		c.Source = SourceKubeconfig
	case inCluster(opts):
		c.Config, err = fromServiceAccount(opts)
		c.Source = SourceInCluster
	default:
		return Cluster{}, ErrNotConfigured
	}
	if err != nil {
		return Cluster{}, err
	}
	if c.Namespace, err = namespace(opts); err != nil {
		return Cluster{}, err
	}
	c.Config.QPS, c.Config.Burst = opts.QPS, opts.Burst
	c.Config.UserAgent = fmt.Sprintf("%s (%s/%s)", opts.UserAgent, runtime.GOOS, runtime.GOARCH)
	return c, nil
}

func fromKubeconfig(path, kubeContext string) (*rest.Config, error) {
	rules := &clientcmd.ClientConfigLoadingRules{Precedence: filepath.SplitList(path)}
	if len(rules.Precedence) == 1 {
		// An explicit path must exist; a list may name missing files.
		rules = &clientcmd.ClientConfigLoadingRules{ExplicitPath: path}
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kube: kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}

// inCluster reports whether the process runs in a pod with a mounted
// service account token.
func inCluster(opts Options) bool {
	if opts.Getenv(envServiceHost) == "" || opts.Getenv(envServicePort) == "" {
		return false
	}
	st, err := os.Stat(filepath.Join(opts.ServiceAccountDir, "token"))
	return err == nil && st.Mode().IsRegular()
}

// fromServiceAccount is rest.InClusterConfig with the environment and the
// mount injected, and a missing CA bundle treated as an error rather than a
// reason to trust the system roots.
func fromServiceAccount(opts Options) (*rest.Config, error) {
	tokenFile := filepath.Join(opts.ServiceAccountDir, "token")
	caFile := filepath.Join(opts.ServiceAccountDir, "ca.crt")
	token, err := readSmall(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("kube: in-cluster service account token: %w", err)
	}
	if _, err := os.Stat(caFile); err != nil {
		return nil, fmt.Errorf("kube: in-cluster CA bundle: %w; mount the service account's ca.crt or pass --kubeconfig", err)
	}
	host, port := opts.Getenv(envServiceHost), opts.Getenv(envServicePort)
	return &rest.Config{
		Host:            "https://" + net.JoinHostPort(host, port),
		TLSClientConfig: rest.TLSClientConfig{CAFile: caFile},
		BearerToken:     strings.TrimSpace(string(token)),
		// Projected tokens rotate; client-go rereads this file.
		BearerTokenFile: tokenFile,
	}, nil
}

// namespace resolves the agent's own namespace.
func namespace(opts Options) (string, error) {
	ns, from := opts.Namespace, "--namespace"
	if ns == "" {
		ns, from = opts.Getenv(EnvNamespace), EnvNamespace
	}
	if ns == "" {
		path := filepath.Join(opts.ServiceAccountDir, "namespace")
		b, err := readSmall(path)
		switch {
		case err == nil:
			ns, from = strings.TrimSpace(string(b)), path
		case errors.Is(err, os.ErrNotExist):
			ns, from = DefaultNamespace, "the default"
		default:
			return "", fmt.Errorf("kube: pod namespace: %w", err)
		}
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return "", fmt.Errorf("kube: namespace %q from %s is not a valid namespace name: %s", ns, from, strings.Join(errs, "; "))
	}
	return ns, nil
}

// readSmall reads a file of at most maxServiceAccountFile bytes.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path) //nolint:gosec // paths of the service account mount
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxServiceAccountFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxServiceAccountFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxServiceAccountFile)
	}
	return b, nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
