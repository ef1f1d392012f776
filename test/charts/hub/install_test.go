package hub

import (
	"log/slog"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/kube"
	release "helm.sh/helm/v4/pkg/release/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"

	"github.com/outposthq/outpost/internal/kube/kubetest"
)

func TestChartInstalls(t *testing.T) {
	env := cluster(t)
	// Every built-in kind the chart can render; TestChartInstallsWithIntegrations
	// covers the CRD-based ones (Certificate, HTTPRoute, ServiceMonitor, Istio).
	cases := []struct {
		name     string
		values   string
		strategy appsv1.DeploymentStrategyType
		replicas int32
		pdb      bool
	}{
		{
			name: "SQLite mode with an Ingress and network policies installs",
			values: `
ingress:
  enabled: true
  host: outpost.example.com
  tls:
    issuer: letsencrypt
networkPolicies:
  enabled: true
`,
			strategy: appsv1.RecreateDeploymentStrategyType, replicas: 1,
		},
		{
			name: "PostgreSQL mode with an Ingress and network policies installs",
			values: postgresValues + `
ingress:
  enabled: true
  host: outpost.example.com
networkPolicies:
  enabled: true
`,
			strategy: appsv1.RollingUpdateDeploymentStrategyType, replicas: 2, pdb: true,
		},
	}
	ch := loadChart(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			ns := env.Namespace(t, "hub-chart")
			install(t, env, ns, ch, parseValues(t, tc.values))
			d, err := env.Client.AppsV1().Deployments(ns).Get(ctx, releaseName, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if d.Spec.Strategy.Type != tc.strategy || *d.Spec.Replicas != tc.replicas {
				t.Errorf("installed %d replicas with strategy %s, want %d with %s", *d.Spec.Replicas, d.Spec.Strategy.Type, tc.replicas, tc.strategy)
			}
			nps, err := env.Client.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(nps.Items) != 3 {
				t.Errorf("%d network policies installed, want 3", len(nps.Items))
			}
			if _, err := env.Client.NetworkingV1().Ingresses(ns).Get(ctx, releaseName, metav1.GetOptions{}); err != nil {
				t.Errorf("ingress: %v", err)
			}
			_, err = env.Client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, releaseName, metav1.GetOptions{})
			if (err == nil) != tc.pdb {
				t.Errorf("disruption budget: %v, want one: %t", err, tc.pdb)
			}
		})
	}
}

// install installs the chart with vals into ns through the Helm SDK, as
// `helm install` does, and returns the release.
func install(t *testing.T, env *kubetest.Env, ns string, ch *chart.Chart, vals map[string]any) *release.Release {
	t.Helper()
	in := action.NewInstall(helmConfig(t, env.Config, ns))
	in.ReleaseName, in.Namespace = releaseName, ns
	in.ServerSideApply = true
	// No kubelet runs pods here: nothing would become ready.
	in.WaitStrategy = kube.HookOnlyStrategy
	rel, err := in.RunWithContext(t.Context(), ch, vals)
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	r, ok := rel.(*release.Release)
	if !ok {
		t.Fatalf("unexpected release type %T", rel)
	}
	return r
}

// helmConfig returns a Helm action configuration acting on ns with cfg,
// keeping releases in Secrets as the helm CLI does.
func helmConfig(t *testing.T, cfg *rest.Config, ns string) *action.Configuration {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(false)
	host := cfg.Host
	flags.APIServer, flags.Namespace = &host, &ns
	flags.WrapConfigFn = func(*rest.Config) *rest.Config { return rest.CopyConfig(cfg) }
	ac := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	if err := ac.Init(flags, ns, "secret"); err != nil {
		t.Fatal(err)
	}
	return ac
}
