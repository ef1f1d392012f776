package hub

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// renderCase is a set of values the chart must lint and render with, and
// what the rendering must hold.
type renderCase struct {
	name   string
	golden string
	values string
	// kinds are the kinds of every rendered object, sorted.
	kinds    []string
	replicas int32
	strategy appsv1.DeploymentStrategyType
}

const postgresValues = `
database:
  mode: postgres
  postgres:
    existingSecret: outpost-hub-db
    secretKey: dsn
    egress:
      cidr: 10.20.0.0/16
      port: 5432
`

var renderCases = []renderCase{
	{
		name:     "the defaults run one replica on SQLite with a volume claim",
		golden:   "sqlite",
		values:   ``,
		kinds:    []string{"Deployment", "PersistentVolumeClaim", "Service", "ServiceAccount"},
		replicas: 1, strategy: appsv1.RecreateDeploymentStrategyType,
	},
	{
		name:   "SQLite takes the claim's size and storage class from values",
		golden: "sqlite-storage",
		values: `
database:
  sqlite:
    persistence:
      size: 5Gi
      storageClass: fast-ssd
`,
		kinds:    []string{"Deployment", "PersistentVolumeClaim", "Service", "ServiceAccount"},
		replicas: 1, strategy: appsv1.RecreateDeploymentStrategyType,
	},
	{
		name:     "PostgreSQL runs two replicas, rolling, with a disruption budget and no claim",
		golden:   "postgres",
		values:   postgresValues,
		kinds:    []string{"Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"},
		replicas: 2, strategy: appsv1.RollingUpdateDeploymentStrategyType,
	},
	{
		name:   "PostgreSQL with one replica has no disruption budget that would block every drain",
		golden: "postgres-one-replica",
		values: postgresValues + `
replicas: 1
`,
		kinds:    []string{"Deployment", "Service", "ServiceAccount"},
		replicas: 1, strategy: appsv1.RollingUpdateDeploymentStrategyType,
	},
	{
		name:   "a cert-manager issuer makes a Certificate for the hub's listener",
		golden: "cert-manager",
		values: `
tls:
  certManager:
    issuer: internal-ca
    dnsNames: [hub.internal.example]
`,
		kinds:    []string{"Certificate", "Deployment", "PersistentVolumeClaim", "Service", "ServiceAccount"},
		replicas: 1, strategy: appsv1.RecreateDeploymentStrategyType,
	},
	{
		name:   "an Ingress gets its certificate through the cert-manager issuer annotation",
		golden: "ingress",
		values: `
ingress:
  enabled: true
  className: nginx
  host: outpost.example.com
  tls:
    issuer: letsencrypt
`,
		kinds:    []string{"Deployment", "Ingress", "PersistentVolumeClaim", "Service", "ServiceAccount"},
		replicas: 1, strategy: appsv1.RecreateDeploymentStrategyType,
	},
	{
		name:   "the Gateway API routes through an HTTPRoute",
		golden: "gateway",
		values: `
gateway:
  enabled: true
  parentRefs:
    - name: public
      namespace: gateway-system
      sectionName: https
  hostnames: [outpost.example.com]
`,
		kinds:    []string{"Deployment", "HTTPRoute", "PersistentVolumeClaim", "Service", "ServiceAccount"},
		replicas: 1, strategy: appsv1.RecreateDeploymentStrategyType,
	},
	{
		name:   "Istio enforces mutual TLS and admits only the ingress gateway",
		golden: "istio",
		values: `
istio:
  enabled: true
`,
		kinds:    []string{"AuthorizationPolicy", "Deployment", "PeerAuthentication", "PersistentVolumeClaim", "Service", "ServiceAccount"},
		replicas: 1, strategy: appsv1.RecreateDeploymentStrategyType,
	},
	{
		name:   "network policies deny by default and let in the ingress and monitoring namespaces and out DNS",
		golden: "networkpolicies",
		values: `
networkPolicies:
  enabled: true
`,
		kinds:    []string{"Deployment", "NetworkPolicy", "NetworkPolicy", "NetworkPolicy", "PersistentVolumeClaim", "Service", "ServiceAccount"},
		replicas: 1, strategy: appsv1.RecreateDeploymentStrategyType,
	},
	{
		name:   "network policies in PostgreSQL mode let the hub reach the database",
		golden: "networkpolicies-postgres",
		values: postgresValues + `
networkPolicies:
  enabled: true
`,
		kinds:    []string{"Deployment", "NetworkPolicy", "NetworkPolicy", "NetworkPolicy", "PodDisruptionBudget", "Service", "ServiceAccount"},
		replicas: 2, strategy: appsv1.RollingUpdateDeploymentStrategyType,
	},
	{
		name:   "a ServiceMonitor scrapes the plain-HTTP metrics listener",
		golden: "servicemonitor",
		values: `
metrics:
  serviceMonitor:
    enabled: true
    labels:
      release: prometheus
`,
		kinds:    []string{"Deployment", "PersistentVolumeClaim", "Service", "ServiceAccount", "ServiceMonitor"},
		replicas: 1, strategy: appsv1.RecreateDeploymentStrategyType,
	},
	{
		name:   "every feature on at once in PostgreSQL mode",
		golden: "postgres-all",
		values: postgresValues + `
replicas: 3
tls:
  certManager:
    issuer: internal-ca
ingress:
  enabled: true
  host: outpost.example.com
  tls:
    issuer: letsencrypt
    issuerKind: Issuer
istio:
  enabled: true
networkPolicies:
  enabled: true
metrics:
  serviceMonitor:
    enabled: true
`,
		kinds: []string{"AuthorizationPolicy", "Certificate", "Deployment", "Ingress", "NetworkPolicy", "NetworkPolicy", "NetworkPolicy",
			"PeerAuthentication", "PodDisruptionBudget", "Service", "ServiceAccount", "ServiceMonitor"},
		replicas: 3, strategy: appsv1.RollingUpdateDeploymentStrategyType,
	},
}

func TestChartLints(t *testing.T) {
	for _, tc := range renderCases {
		t.Run(tc.name, func(t *testing.T) {
			l := action.NewLint()
			l.Namespace = namespace
			l.Strict = true
			kv, err := common.ParseKubeVersion(kubeVersion)
			if err != nil {
				t.Fatal(err)
			}
			l.KubeVersion = kv
			res := l.Run([]string{chartDir}, parseValues(t, tc.values))
			for _, err := range res.Errors {
				t.Errorf("lint: %v", err)
			}
			for _, m := range res.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("lint: %s", m)
				}
			}
		})
	}
}

func TestChartRenders(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range renderCases {
		t.Run(tc.name, func(t *testing.T) {
			rel, err := render(t.Context(), ch, parseValues(t, tc.values))
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.golden, []byte(rel.Manifest+"\n---\n# NOTES.txt\n"+rel.Info.Notes+"\n"))
			objs := objects(t, rel.Manifest)
			if got := kinds(objs); !slices.Equal(got, tc.kinds) {
				t.Errorf("rendered kinds %v, want %v", got, tc.kinds)
			}
			d := deployment(t, objs)
			if d.Spec.Replicas == nil || *d.Spec.Replicas != tc.replicas {
				t.Errorf("replicas %v, want %d", d.Spec.Replicas, tc.replicas)
			}
			if d.Spec.Strategy.Type != tc.strategy {
				t.Errorf("strategy %s, want %s", d.Spec.Strategy.Type, tc.strategy)
			}
			checkMigrations(t, d)
			checkMetricsListener(t, d, objs)
		})
	}
}

// checkMetricsListener asserts that the hub serves /metrics on a listener
// of its own, which the Service's metrics port leads to, so the HTTPS
// port an ingress exposes never answers /metrics.
func checkMetricsListener(t *testing.T, d *appsv1.Deployment, objs []object) {
	t.Helper()
	var hub *corev1.Container
	for i := range d.Spec.Template.Spec.Containers {
		if d.Spec.Template.Spec.Containers[i].Name == "hub" {
			hub = &d.Spec.Template.Spec.Containers[i]
		}
	}
	if hub == nil {
		t.Fatal("no hub container")
	}
	port := int32(0)
	for _, p := range hub.Ports {
		if p.Name == "metrics" {
			port = p.ContainerPort
		}
	}
	if port == 0 || !slices.Contains(hub.Args, fmt.Sprintf("--metrics-listen=:%d", port)) {
		t.Errorf("hub container: metrics port %d, args %q; want --metrics-listen on the metrics port", port, hub.Args)
	}
	for _, o := range objs {
		if o.Kind != "Service" {
			continue
		}
		var svc corev1.Service
		if err := yaml.UnmarshalStrict(o.YAML, &svc); err != nil {
			t.Fatalf("Service: %v", err)
		}
		for _, p := range svc.Spec.Ports {
			if p.Name == "metrics" && p.TargetPort.String() != "metrics" {
				t.Errorf("Service port metrics targets %s, want the metrics listener", p.TargetPort.String())
			}
		}
	}
}

// checkMigrations asserts that an init container runs outpost-hub migrate
// on the same database as the hub.
func checkMigrations(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	spec := d.Spec.Template.Spec
	if len(spec.InitContainers) != 1 || len(spec.Containers) != 1 {
		t.Fatalf("want one init container and one container, got %d and %d", len(spec.InitContainers), len(spec.Containers))
	}
	mig, hub := spec.InitContainers[0], spec.Containers[0]
	if len(mig.Args) == 0 || mig.Args[0] != "migrate" {
		t.Errorf("init container args %q, want migrate first", mig.Args)
	}
	if len(hub.Args) == 0 || hub.Args[0] != "serve" {
		t.Errorf("hub args %q, want serve first", hub.Args)
	}
	if a, b := dbArg(mig), dbArg(hub); a == "" || a != b {
		t.Errorf("migrate runs on %q, the hub on %q", a, b)
	}
	if mig.Image != hub.Image {
		t.Errorf("migrate runs image %s, the hub %s", mig.Image, hub.Image)
	}
	if !slices.EqualFunc(mig.Env, hub.Env, func(a, b corev1.EnvVar) bool { return a.String() == b.String() }) {
		t.Errorf("migrate env %v differs from the hub's %v", mig.Env, hub.Env)
	}
}

// dbArg returns the value of c's --db flag.
func dbArg(c corev1.Container) string {
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--db="); ok {
			return v
		}
	}
	return ""
}
