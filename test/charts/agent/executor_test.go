package agent_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/manifests"
	"github.com/outposthq/outpost/internal/taskspec"
)

const shopBundle = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
spec:
  replicas: 1
  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels: {app: shop}
    spec:
      containers:
      - name: app
        image: ghcr.io/example/shop:1.4.2
---
apiVersion: v1
kind: Service
metadata:
  name: shop
spec:
  selector: {app: shop}
  ports:
  - port: 80
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: shop-config
data:
  color: blue
`

// agentConfig is a client config carrying a token of the installed
// agent's ServiceAccount, as its pod would mount it.
func (in installed) agentConfig(t *testing.T) *rest.Config {
	t.Helper()
	tok, err := env.Client.CoreV1().ServiceAccounts(in.ns).CreateToken(t.Context(), in.sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token of the agent's ServiceAccount: %v", err)
	}
	return &rest.Config{Host: env.Config.Host, TLSClientConfig: rest.TLSClientConfig{CAData: env.Config.CAData}, BearerToken: tok.Status.Token}
}

// applyAs runs a manifests task of the shop bundle into namespace with
// the agent's identity, as the agent would.
func (in installed) applyAs(t *testing.T, cfg *rest.Config, namespace string) error {
	t.Helper()
	ex, err := manifests.New(manifests.Options{Config: cfg, AgentNamespace: in.ns})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(taskspec.Manifests{Release: "shop", Namespace: namespace, Revision: 1, Bundle: shopBundle})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ex.Execute(t.Context(), executor.Task{ID: fmt.Sprintf("task-shop-%s", namespace), Kind: taskspec.KindManifests, Spec: raw, Attempt: 1})
	return err
}

func TestInstalledNamespacedProfileIsEnoughForAManifestsTask(t *testing.T) {
	t.Parallel()
	in := install(t, "namespaced")
	cfg := in.agentConfig(t)
	if err := in.applyAs(t, cfg, in.target); err != nil {
		t.Fatalf("apply into the target namespace with the chart's RBAC: %v", err)
	}
	if _, err := env.Client.AppsV1().Deployments(in.target).Get(t.Context(), "shop", metav1.GetOptions{}); err != nil {
		t.Errorf("the task ran but the Deployment is not there: %v", err)
	}
	err := in.applyAs(t, cfg, in.other)
	if !errors.Is(err, manifests.ErrForbidden) {
		t.Errorf("apply into a namespace not in rbac.targetNamespaces: got %v, want %v", err, manifests.ErrForbidden)
	}
}
