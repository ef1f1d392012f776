package hub

import (
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/outposthq/outpost/internal/kube/kubetest"
)

// crdKind is a kind from a project the chart integrates with, served in
// the test cluster by a minimal CRD that accepts any spec.
type crdKind struct {
	group, version, kind, plural string
}

var crdKinds = []crdKind{
	{"cert-manager.io", "v1", "Certificate", "certificates"},
	{"gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes"},
	{"monitoring.coreos.com", "v1", "ServiceMonitor", "servicemonitors"},
	{"security.istio.io", "v1", "PeerAuthentication", "peerauthentications"},
	{"security.istio.io", "v1", "AuthorizationPolicy", "authorizationpolicies"},
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installCRDs creates the minimal CRDs once per cluster and waits until
// they are served.
func installCRDs(t *testing.T, env *kubetest.Env) {
	t.Helper()
	ctx := t.Context()
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range crdKinds {
		crd := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apiextensions.k8s.io/v1",
			"kind":       "CustomResourceDefinition",
			"metadata": map[string]any{
				"name": k.plural + "." + k.group,
				// What the Gateway API's own CRDs carry to use a k8s.io group.
				"annotations": map[string]any{"api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/891"},
			},
			"spec": map[string]any{
				"group": k.group,
				"scope": "Namespaced",
				"names": map[string]any{"kind": k.kind, "plural": k.plural, "singular": strings.ToLower(k.kind), "listKind": k.kind + "List"},
				"versions": []any{map[string]any{
					"name": k.version, "served": true, "storage": true,
					"schema": map[string]any{"openAPIV3Schema": map[string]any{
						"type":                                 "object",
						"x-kubernetes-preserve-unknown-fields": true,
					}},
				}},
			},
		}}
		_, err := dyn.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("CRD %s: %v", k.kind, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, k := range crdKinds {
		for {
			_, err := env.Client.Discovery().ServerResourcesForGroupVersion(k.group + "/" + k.version)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s/%s not served: %v", k.group, k.version, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func TestChartInstallsWithIntegrations(t *testing.T) {
	env := cluster(t)
	installCRDs(t, env)
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ch := loadChart(t)
	for golden, want := range map[string]int{"postgres-all": 4, "gateway": 1} {
		tc := renderCaseNamed(t, golden)
		t.Run(tc.name, func(t *testing.T) {
			ns := env.Namespace(t, "hub-chart-crd")
			rel := install(t, env, ns, ch, parseValues(t, tc.values))
			found := 0
			for _, o := range objects(t, rel.Manifest) {
				for _, k := range crdKinds {
					if o.Kind != k.kind {
						continue
					}
					found++
					gvr := schema.GroupVersionResource{Group: k.group, Version: k.version, Resource: k.plural}
					if _, err := dyn.Resource(gvr).Namespace(ns).Get(t.Context(), o.Name, metav1.GetOptions{}); err != nil {
						t.Errorf("%s %s was not installed: %v", o.Kind, o.Name, err)
					}
				}
			}
			if found != want {
				t.Errorf("the release holds %d objects of integration kinds, want %d", found, want)
			}
		})
	}
}

// renderCaseNamed returns the render case with the given golden file.
func renderCaseNamed(t *testing.T, golden string) renderCase {
	t.Helper()
	for _, tc := range renderCases {
		if tc.golden == golden {
			return tc
		}
	}
	t.Fatalf("no render case %s", golden)
	return renderCase{}
}
