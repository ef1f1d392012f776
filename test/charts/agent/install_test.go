package agent_test

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/kube"
	release "helm.sh/helm/v4/pkg/release/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/outposthq/outpost/internal/kube/kubetest"
)

// installed is the chart installed into a fresh namespace.
type installed struct {
	ns, target, other string
	sa                string
}

// install installs the chart with profile into a fresh namespace through
// the Helm SDK, as `helm install` would, with one fresh target namespace.
func install(t *testing.T, profile string) installed {
	t.Helper()
	needCluster(t)
	in := installed{
		ns:     env.Namespace(t, "outpost"),
		target: env.Namespace(t, "app"),
		other:  env.Namespace(t, "other"),
		sa:     "outpost-agent",
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := kubetest.WriteKubeconfig(kubeconfig, env.Config); err != nil {
		t.Fatal(err)
	}
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &kubeconfig
	flags.Namespace = &in.ns
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	if err := cfg.Init(flags, in.ns, "secret"); err != nil {
		t.Fatal(err)
	}
	ins := action.NewInstall(cfg)
	ins.ReleaseName = "outpost-agent"
	ins.Namespace = in.ns
	// No kubelet runs in the test cluster: nothing would become ready.
	ins.WaitStrategy = kube.HookOnlyStrategy
	ins.Timeout = time.Minute
	vals := with(baseValues(), map[string]any{
		"rbac.profile":          profile,
		"rbac.targetNamespaces": []any{in.target},
		"terraform.enabled":     true,
		// The schema and the API server both see the policy.
		"networkPolicies.enabled": true,
	})
	out, err := ins.RunWithContext(t.Context(), loadChart(t), vals)
	if err != nil {
		t.Fatalf("helm install (profile %s): %v", profile, err)
	}
	rel, ok := out.(*release.Release)
	if !ok || rel.Info == nil || rel.Info.Status != "deployed" {
		t.Fatalf("release %+v is not deployed", out)
	}
	// The namespaces only terminate; uninstalling also removes the
	// cluster profile's ClusterRole and binding.
	t.Cleanup(func() {
		un := action.NewUninstall(cfg)
		un.WaitStrategy = kube.HookOnlyStrategy
		if _, err := un.Run("outpost-agent"); err != nil {
			t.Errorf("helm uninstall: %v", err)
		}
	})
	return in
}

// access is one request the agent's ServiceAccount might make.
type access struct {
	verb, group, resource, namespace string
}

func (a access) String() string {
	res := a.resource
	if a.group != "" {
		res += "." + a.group
	}
	where := "cluster-wide"
	if a.namespace != "" {
		where = "in " + a.namespace
	}
	return fmt.Sprintf("%s %s %s", a.verb, res, where)
}

// allowed asks the API server, with a SubjectAccessReview, whether the
// agent's ServiceAccount may make a.
func (in installed) allowed(t *testing.T, a access) bool {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   fmt.Sprintf("system:serviceaccount:%s:%s", in.ns, in.sa),
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + in.ns, "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: a.verb, Group: a.group, Resource: a.resource, Namespace: a.namespace,
		},
	}}
	got, err := env.Client.AuthorizationV1().SubjectAccessReviews().Create(t.Context(), sar, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SubjectAccessReview %s: %v", a, err)
	}
	return got.Status.Allowed
}

func (in installed) expect(t *testing.T, want bool, verbs []string, group, resource, namespace string) {
	t.Helper()
	for _, v := range verbs {
		a := access{v, group, resource, namespace}
		if got := in.allowed(t, a); got != want {
			if want {
				t.Errorf("the agent may not %s; it must", a)
			} else {
				t.Errorf("the agent may %s; it must not", a)
			}
		}
	}
}

var (
	manage    = []string{"get", "list", "watch", "create", "patch", "delete"}
	manageAll = []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	// workloads are what a release typically holds.
	workloads = []struct{ group, resource string }{
		{"apps", "deployments"}, {"", "configmaps"}, {"", "secrets"}, {"", "services"},
	}
	// clusterScoped are requests no namespaced agent may make.
	clusterScoped = []access{
		{"create", "rbac.authorization.k8s.io", "clusterrolebindings", ""},
		{"create", "rbac.authorization.k8s.io", "clusterroles", ""},
		{"list", "", "nodes", ""},
		{"create", "", "namespaces", ""},
		{"create", "apiextensions.k8s.io", "customresourcedefinitions", ""},
		{"list", "", "secrets", ""},
		{"list", "apps", "deployments", ""},
	}
)

// ownNamespace checks what every profile grants in the agent's namespace.
func (in installed) ownNamespace(t *testing.T) {
	t.Helper()
	in.expect(t, true, manageAll, "", "secrets", in.ns)
	in.expect(t, true, manageAll, "coordination.k8s.io", "leases", in.ns)
	in.expect(t, true, []string{"create", "patch"}, "", "events", in.ns)
	in.expect(t, true, []string{"create", "patch"}, "events.k8s.io", "events", in.ns)
}

func TestInstalledNamespacedProfileGrantsItsTargetsAndNothingElse(t *testing.T) {
	t.Parallel()
	in := install(t, "namespaced")
	in.ownNamespace(t)
	for _, w := range workloads {
		in.expect(t, true, manage, w.group, w.resource, in.target)
		in.expect(t, false, manage, w.group, w.resource, in.other)
	}
	in.expect(t, false, []string{"create", "bind", "escalate"}, "rbac.authorization.k8s.io", "rolebindings", in.other)
	in.expect(t, false, []string{"impersonate"}, "", "serviceaccounts", in.target)
	for _, a := range clusterScoped {
		in.expect(t, false, []string{a.verb}, a.group, a.resource, a.namespace)
	}
	// Its own namespace holds its identity, not workloads.
	in.expect(t, false, []string{"create"}, "apps", "deployments", in.ns)
}

func TestInstalledSecretsOnlyProfilePatchesWorkloadsButNeverReplacesThem(t *testing.T) {
	t.Parallel()
	in := install(t, "secrets-only")
	in.ownNamespace(t)
	in.expect(t, true, manageAll, "", "secrets", in.target)
	for _, r := range []string{"deployments", "statefulsets", "daemonsets"} {
		in.expect(t, true, []string{"get", "list", "patch"}, "apps", r, in.target)
		in.expect(t, false, []string{"update", "delete", "create"}, "apps", r, in.target)
	}
	in.expect(t, false, []string{"create", "patch"}, "", "configmaps", in.target)
	in.expect(t, false, manage, "", "secrets", in.other)
	in.expect(t, false, []string{"patch"}, "apps", "deployments", in.other)
	for _, a := range clusterScoped {
		in.expect(t, false, []string{a.verb}, a.group, a.resource, a.namespace)
	}
}

func TestInstalledClusterProfileManagesClusterScopedObjects(t *testing.T) {
	t.Parallel()
	in := install(t, "cluster")
	in.ownNamespace(t)
	in.expect(t, true, []string{"create"}, "apiextensions.k8s.io", "customresourcedefinitions", "")
	in.expect(t, true, []string{"create"}, "rbac.authorization.k8s.io", "clusterrolebindings", "")
	for _, w := range workloads {
		in.expect(t, true, manage, w.group, w.resource, in.other)
	}
}

func TestInstalledChartCreatesNoService(t *testing.T) {
	t.Parallel()
	in := install(t, "namespaced")
	svcs, err := env.Client.CoreV1().Services(in.ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs.Items) != 0 {
		t.Errorf("the release created Services %v; the agent only dials out", svcs.Items)
	}
	d, err := env.Client.AppsV1().Deployments(in.ns).Get(t.Context(), "outpost-agent", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Join(d.Spec.Template.Spec.Containers[0].Args, " ")
	for _, want := range []string{"--namespace=" + in.ns, "--tofu=/usr/local/bin/tofu", "--bootstrap-token-file="} {
		if !strings.Contains(args, want) {
			t.Errorf("agent args %q lack %q", args, want)
		}
	}
}
