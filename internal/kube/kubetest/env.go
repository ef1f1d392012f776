package kubetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Env is a running kube-apiserver and etcd. Config and Client act as a
// cluster administrator.
type Env struct {
	env    *envtest.Environment
	Config *rest.Config
	Client kubernetes.Interface
	seq    atomic.Int64
}

// Start starts kube-apiserver and etcd from AssetsDir. Stop releases them.
func Start() (*Env, error) {
	dir, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	te := &envtest.Environment{
		BinaryAssetsDirectory:    dir,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	cfg, err := te.Start()
	if err != nil {
		return nil, fmt.Errorf("kubetest: start kube-apiserver: %w", err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		_ = te.Stop()
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	return &Env{env: te, Config: cfg, Client: client}, nil
}

// Stop stops kube-apiserver and etcd and removes their data.
func (e *Env) Stop() error {
	if err := e.env.Stop(); err != nil {
		return fmt.Errorf("kubetest: stop: %w", err)
	}
	return nil
}

// Main runs a test package against one shared Env stored in *env, for use
// from TestMain. Where the binaries are not built the package's tests are
// skipped with a loud message, except under CI=true, where that fails.
func Main(m *testing.M, env **Env) {
	os.Exit(run(m, env))
}

func run(m *testing.M, env **Env) int {
	e, err := Start()
	if errors.Is(err, ErrNoAssets) && os.Getenv("CI") != "true" {
		fmt.Fprintf(os.Stderr, "\n!!! SKIPPING every test in this package: %v\n\n", err)
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*env = e
	code := m.Run()
	if err := e.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return code
}

// Namespace creates a namespace with a unique name starting with prefix and
// deletes it when the test ends.
func (e *Env) Namespace(t testing.TB, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d-%d", strings.ToLower(prefix), os.Getpid()%100000, e.seq.Add(1))
	ctx := context.Background()
	_, err := e.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		// Without a namespace controller the namespace only terminates,
		// which is enough to keep tests apart.
		err := e.Client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Logf("kubetest: delete namespace %s: %v", name, err)
		}
	})
	return name
}

// Agent describes a least-privilege agent identity.
type Agent struct {
	// Name of the user.
	Name string
	// Namespace is the agent's own namespace: identity, inventories,
	// leases and events.
	Namespace string
	// Targets are the namespaces it may deploy into, with full rights
	// inside each and nothing cluster-wide.
	Targets []string
}

// AgentConfig provisions a user for a and returns its client config. The
// user is bound only by namespace-scoped Roles: everything in each target
// namespace; Secrets, ConfigMaps, Leases and Events in its own namespace;
// no ClusterRole besides the defaults every authenticated user has
// (discovery and SelfSubjectAccessReview).
func (e *Env) AgentConfig(t testing.TB, a Agent) *rest.Config {
	t.Helper()
	cfg, err := e.AddAgent(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// AddAgent is AgentConfig for callers outside tests, such as the demo. The
// namespaces must exist.
func (e *Env) AddAgent(ctx context.Context, a Agent) (*rest.Config, error) {
	user, err := e.env.AddUser(envtest.User{Name: a.Name}, e.Config)
	if err != nil {
		return nil, fmt.Errorf("kubetest: add user %s: %w", a.Name, err)
	}
	own := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets", "configmaps"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	}
	if err := e.bind(ctx, a.Name, a.Namespace, "outpost-agent-self", own); err != nil {
		return nil, err
	}
	for _, ns := range a.Targets {
		all := []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}}
		if err := e.bind(ctx, a.Name, ns, "outpost-agent-deploy", all); err != nil {
			return nil, err
		}
	}
	cfg := user.Config()
	cfg.QPS, cfg.Burst = 200, 400
	return cfg, nil
}

// CreateNamespace creates a namespace; one that exists already is fine.
func (e *Env) CreateNamespace(ctx context.Context, name string) error {
	_, err := e.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("kubetest: create namespace %s: %w", name, err)
	}
	return nil
}

func (e *Env) bind(ctx context.Context, user, ns, name string, rules []rbacv1.PolicyRule) error {
	roleName := name + "-" + user
	_, err := e.Client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: roleName},
		Rules:      rules,
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("kubetest: create role %s/%s: %w", ns, roleName, err)
	}
	_, err = e.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: roleName},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: roleName},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("kubetest: create rolebinding %s/%s: %w", ns, roleName, err)
	}
	return nil
}

// WriteKubeconfig writes cfg as a kubeconfig file (mode 0600) with its
// credentials embedded.
func WriteKubeconfig(path string, cfg *rest.Config) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["outpost"] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthorityData: cfg.CAData,
		InsecureSkipTLSVerify:    cfg.Insecure,
	}
	kc.AuthInfos["outpost"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cfg.CertData,
		ClientKeyData:         cfg.KeyData,
		Token:                 cfg.BearerToken,
	}
	kc.Contexts["outpost"] = &clientcmdapi.Context{Cluster: "outpost", AuthInfo: "outpost"}
	kc.CurrentContext = "outpost"
	b, err := clientcmd.Write(*kc)
	if err != nil {
		return fmt.Errorf("kubetest: kubeconfig: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("kubetest: kubeconfig: %w", err)
	}
	return nil
}
