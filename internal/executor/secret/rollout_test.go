package secret_test

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outposthq/outpost/internal/executor/secret"
	"github.com/outposthq/outpost/internal/taskspec"
)

func deployment(t *testing.T, ns, name, restartOn string) {
	t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
			},
		},
	}
	if restartOn != "" {
		d.Annotations = map[string]string{secret.AnnotationRestartOn: restartOn}
	}
	if _, err := env.Client.AppsV1().Deployments(ns).Create(t.Context(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// podChecksum returns the Deployment's pod template checksum and its
// resourceVersion.
func podChecksum(t *testing.T, ns, name string) (string, string) {
	t.Helper()
	d, err := env.Client.AppsV1().Deployments(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Annotations[secret.AnnotationSecretsChecksum], d.ResourceVersion
}

func TestRollout(t *testing.T) {
	f := patchOnly(t)
	deployment(t, f.ns, "web", " other , api,")
	deployment(t, f.ns, "worker", "other")
	deployment(t, f.ns, "plain", "")
	_, workerRV := podChecksum(t, f.ns, "worker")
	_, plainRV := podChecksum(t, f.ns, "plain")
	s1 := sealWith(t, f.kr, "api", map[string]string{"token": "tok-first"})

	res := f.run(t, taskspec.Secret{Name: "api", Sealed: s1}, "tok-first")
	if res.Outcome != secret.OutcomeCreated || len(res.Workloads) != 1 || res.Workloads[0] != (secret.Workload{Kind: "Deployment", Name: "web"}) {
		t.Fatalf("first apply: %+v, want web patched", res)
	}
	first, _ := podChecksum(t, f.ns, "web")
	if first == "" {
		t.Fatal("the pod template of web has no checksum after the first apply")
	}

	t.Run("re-applying the unchanged secret patches nothing", func(t *testing.T) {
		_, rv := podChecksum(t, f.ns, "web")
		res := f.run(t, taskspec.Secret{Name: "api", Sealed: s1}, "tok-first")
		if res.Outcome != secret.OutcomeUnchanged || len(res.Workloads) != 0 {
			t.Fatalf("result %+v, want unchanged and nothing patched", res)
		}
		if sum, rv2 := podChecksum(t, f.ns, "web"); sum != first || rv2 != rv {
			t.Fatalf("web changed: checksum %s → %s, resourceVersion %s → %s", first, sum, rv, rv2)
		}
	})
	t.Run("a new value changes the checksum", func(t *testing.T) {
		s2 := sealWith(t, f.kr, "api", map[string]string{"token": "tok-second"})
		res := f.run(t, taskspec.Secret{Name: "api", Sealed: s2}, "tok-second")
		if res.Outcome != secret.OutcomeUpdated || len(res.Workloads) != 1 || res.Workloads[0].Name != "web" {
			t.Fatalf("result %+v, want updated and web patched", res)
		}
		if sum, _ := podChecksum(t, f.ns, "web"); sum == first || sum == "" {
			t.Fatalf("checksum %q, want a new one", sum)
		}
	})
	t.Run("workloads that do not list the secret are never patched", func(t *testing.T) {
		if sum, rv := podChecksum(t, f.ns, "worker"); sum != "" || rv != workerRV {
			t.Fatalf("worker was patched: checksum %q", sum)
		}
		if sum, rv := podChecksum(t, f.ns, "plain"); sum != "" || rv != plainRV {
			t.Fatalf("plain was patched: checksum %q", sum)
		}
	})
	t.Run("another listed secret changes the combined checksum", func(t *testing.T) {
		before, _ := podChecksum(t, f.ns, "web")
		res := f.run(t, taskspec.Secret{Name: "other", Sealed: sealWith(t, f.kr, "other", map[string]string{"k": "other-value"})}, "other-value")
		if len(res.Workloads) != 2 {
			t.Fatalf("result %+v, want web and worker patched", res)
		}
		if after, _ := podChecksum(t, f.ns, "web"); after == before {
			t.Fatal("web's checksum did not change")
		}
	})
}
