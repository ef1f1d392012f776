package kubetest

import (
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

var env *Env

func TestMain(m *testing.M) { Main(m, &env) }

func TestAgentConfigGrantsOnlyItsNamespaces(t *testing.T) {
	self := env.Namespace(t, "agent")
	target := env.Namespace(t, "app")
	other := env.Namespace(t, "other")
	cfg := env.AgentConfig(t, Agent{Name: "agent-a", Namespace: self, Targets: []string{target}})
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}
	if _, err := c.CoreV1().ConfigMaps(target).Create(t.Context(), cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create in a target namespace: %v", err)
	}
	if _, err := c.CoreV1().Secrets(self).Create(t.Context(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "id"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create a secret in its own namespace: %v", err)
	}
	if _, err := c.CoreV1().ConfigMaps(other).Create(t.Context(), cm, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("create in another namespace: got %v, want forbidden", err)
	}
	if _, err := c.CoreV1().Namespaces().List(t.Context(), metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("list namespaces: got %v, want forbidden", err)
	}
}

func TestWriteKubeconfigRoundTrips(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := WriteKubeconfig(path, env.Config); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Namespaces().Get(t.Context(), "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("admin through the written kubeconfig: %v", err)
	}
}
