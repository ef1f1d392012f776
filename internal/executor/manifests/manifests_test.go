package manifests_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outposthq/outpost/internal/executor/manifests"
	"github.com/outposthq/outpost/internal/taskspec"
)

func TestApplyRepeatAndPrune(t *testing.T) {
	s := leastPrivilege(t)
	ex := s.executor(t)
	rev1 := taskspec.Manifests{Release: "web", Namespace: s.target, Bundle: join(
		configMap("settings", "", map[string]string{"mode": "blue"}),
		configMap("extra", "", nil),
		service, deployment)}

	first := execute(t, ex, task(t, "t1", 1, rev1))
	t.Run("a first task creates every object with the ownership labels", func(t *testing.T) {
		wantOutcomes(t, first, map[string]string{"ConfigMap/settings": "created", "ConfigMap/extra": "created", "Service/web": "created", "Deployment/web": "created"})
		if first.Revision != 1 || first.Counts.Created != 4 || !first.DryRun.OK || first.DryRun.Objects != 4 {
			t.Fatalf("result %+v", first)
		}
		cm, err := env.Client.CoreV1().ConfigMaps(s.target).Get(t.Context(), "settings", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"app.kubernetes.io/managed-by": "outpost", "outpost.dev/release": "web", "outpost.dev/revision": "1"}
		for k, v := range want {
			if cm.Labels[k] != v {
				t.Fatalf("labels %v: want %s=%s", cm.Labels, k, v)
			}
		}
		if cm.Data["mode"] != "blue" {
			t.Fatalf("data %v", cm.Data)
		}
		var owned bool
		for _, mf := range cm.ManagedFields {
			owned = owned || mf.Manager == manifests.FieldManager && mf.Operation == metav1.ManagedFieldsOperationApply
		}
		if !owned {
			t.Fatalf("managed fields %v: want an apply by %q", cm.ManagedFields, manifests.FieldManager)
		}
	})
	t.Run("a repeat of a committed task reports its result again", func(t *testing.T) {
		repeat := execute(t, ex, task(t, "t1", 2, rev1))
		if fmt.Sprint(outcomes(repeat)) != fmt.Sprint(outcomes(first)) {
			t.Fatalf("repeat %v, want %v", outcomes(repeat), outcomes(first))
		}
	})
	t.Run("the same spec in a new task leaves everything unchanged", func(t *testing.T) {
		again := execute(t, ex, task(t, "t2", 1, rev1))
		wantOutcomes(t, again, map[string]string{"ConfigMap/settings": "unchanged", "ConfigMap/extra": "unchanged", "Service/web": "unchanged", "Deployment/web": "unchanged"})
		if again.Revision != 1 {
			t.Fatalf("revision %d, want the unchanged content to stay at 1", again.Revision)
		}
	})
	t.Run("a revision without an object prunes it", func(t *testing.T) {
		rev2 := rev1
		rev2.Bundle = join(configMap("settings", "", map[string]string{"mode": "green"}), service, deployment)
		res := execute(t, ex, task(t, "t3", 1, rev2))
		wantOutcomes(t, res, map[string]string{"ConfigMap/settings": "configured", "ConfigMap/extra": "pruned", "Service/web": "configured", "Deployment/web": "configured"})
		if res.Revision != 2 || res.Counts.Pruned != 1 {
			t.Fatalf("result %+v", res)
		}
		if configMapExists(t, s.target, "extra") {
			t.Fatal("the pruned ConfigMap still exists")
		}
	})
	t.Run("prune false leaves a dropped object in place", func(t *testing.T) {
		no := false
		rev3 := taskspec.Manifests{Release: "web", Namespace: s.target, Prune: &no, Bundle: join(service, deployment)}
		res := execute(t, ex, task(t, "t4", 1, rev3))
		if res.Counts.Pruned != 0 || !configMapExists(t, s.target, "settings") {
			t.Fatalf("result %+v: nothing should be pruned", res)
		}
	})
}

func TestCollisionDefense(t *testing.T) {
	s := leastPrivilege(t)
	ex := s.executor(t)
	ctx := t.Context()
	foreign := mustCreateConfigMap(t, s.target, "shared", nil, map[string]string{"owner": "someone"})
	mustCreateConfigMap(t, s.target, "other-release", map[string]string{"app.kubernetes.io/managed-by": "outpost", "outpost.dev/release": "api"}, map[string]string{"owner": "api"})
	bundle := join(
		configMap("shared", "", map[string]string{"owner": "web"}),
		configMap("other-release", "", map[string]string{"owner": "web"}),
		configMap("mine", "", nil))
	spec := taskspec.Manifests{Release: "web", Namespace: s.target, Bundle: bundle}

	t.Run("objects the release does not own are skipped, reported and untouched", func(t *testing.T) {
		res := execute(t, ex, task(t, "c1", 1, spec))
		wantOutcomes(t, res, map[string]string{
			"ConfigMap/shared":        "skipped: exists and is not managed by outpost release web",
			"ConfigMap/other-release": "skipped: owned by release api",
			"ConfigMap/mine":          "created",
		})
		cm, err := env.Client.CoreV1().ConfigMaps(s.target).Get(ctx, "shared", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cm.ResourceVersion != foreign.ResourceVersion || cm.Data["owner"] != "someone" || len(cm.Labels) != 0 {
			t.Fatalf("the foreign object changed: %+v", cm)
		}
	})
	t.Run("a skipped object is never pruned", func(t *testing.T) {
		res := execute(t, ex, task(t, "c2", 1, taskspec.Manifests{Release: "web", Namespace: s.target, Bundle: configMap("mine", "", nil)}))
		wantOutcomes(t, res, map[string]string{"ConfigMap/mine": "configured"})
		if !configMapExists(t, s.target, "shared") || !configMapExists(t, s.target, "other-release") {
			t.Fatal("a foreign object was deleted")
		}
	})
	t.Run("adopt takes the objects over", func(t *testing.T) {
		adopt := spec
		adopt.Adopt = true
		res := execute(t, ex, task(t, "c3", 1, adopt))
		wantOutcomes(t, res, map[string]string{
			"ConfigMap/shared":        "configured: adopted by this release",
			"ConfigMap/other-release": "configured: adopted by this release",
			"ConfigMap/mine":          "configured",
		})
		cm, err := env.Client.CoreV1().ConfigMaps(s.target).Get(ctx, "shared", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cm.Labels["outpost.dev/release"] != "web" || cm.Data["owner"] != "web" {
			t.Fatalf("adopted object %+v", cm)
		}
	})
}

func TestValidationFailuresChangeNothing(t *testing.T) {
	s := leastPrivilege(t)
	other := env.Namespace(t, "other")
	ex := s.executor(t)
	t.Run("an object outside the agent's Role fails naming the permission", func(t *testing.T) {
		spec := taskspec.Manifests{Release: "web", Namespace: s.target, Bundle: join(
			configMap("a", "", nil), service, configMap("b", other, nil))}
		_, err := ex.Execute(t.Context(), task(t, "v1", 1, spec))
		wantTerminal(t, err, manifests.ErrForbidden,
			fmt.Sprintf(`"create" on configmaps in namespace %q`, other), fmt.Sprintf("ConfigMap %s/b (document 3)", other))
		if configMapExists(t, s.target, "a") || inventoryExists(t, s, "web") {
			t.Fatal("a rejected bundle wrote something")
		}
		if _, err := env.Client.CoreV1().Services(s.target).Get(t.Context(), "web", metav1.GetOptions{}); err == nil {
			t.Fatal("a rejected bundle created the Service")
		}
	})
	t.Run("a cluster-scoped object fails naming the permission", func(t *testing.T) {
		spec := taskspec.Manifests{Release: "web", Namespace: s.target, Bundle: join(configMap("a", "", nil), "apiVersion: v1\nkind: Namespace\nmetadata: {name: sneaky}\n")}
		_, err := ex.Execute(t.Context(), task(t, "v2", 1, spec))
		wantTerminal(t, err, manifests.ErrForbidden, `"create" on namespaces (cluster-scoped)`, "Namespace sneaky (document 2)")
		if configMapExists(t, s.target, "a") {
			t.Fatal("a rejected bundle wrote something")
		}
	})
	t.Run("an object the server rejects in the dry-run fails naming it and the field", func(t *testing.T) {
		bad := strings.Replace(service, "port: 80", "port: 70000", 1)
		spec := taskspec.Manifests{Release: "web", Namespace: s.target, Bundle: join(configMap("a", "", nil), bad)}
		_, err := ex.Execute(t.Context(), task(t, "v3", 1, spec))
		wantTerminal(t, err, manifests.ErrDryRun, "Service "+s.target+"/web (document 2)", "spec.ports[0].port")
		if configMapExists(t, s.target, "a") || inventoryExists(t, s, "web") {
			t.Fatal("a rejected bundle wrote something")
		}
	})
	tooMany := manifests.Options{MaxObjects: 2}
	small := s.executor(t, func(o *manifests.Options) { o.MaxObjects = tooMany.MaxObjects; o.MaxBundleBytes = 4096 })
	bad := []struct {
		name, bundle string
		ex           *manifests.Executor
		want         []string
	}{
		{"garbage YAML", "apiVersion: v1\nkind: [\n", ex, []string{"document 1", "malformed YAML"}},
		{"a missing kind", configMap("a", "", nil) + "---\napiVersion: v1\nmetadata: {name: b}\n", ex, []string{"document 2", "kind is missing"}},
		{"a duplicate object", join(configMap("a", "", nil), configMap("a", "", nil)), ex, []string{"ConfigMap a (document 2) is given twice"}},
		{"a duplicate once the default namespace is filled in", join(configMap("a", "", nil), configMap("a", s.target, nil)), ex, []string{"given twice"}},
		{"too many objects", join(configMap("a", "", nil), configMap("b", "", nil), configMap("c", "", nil)), small, []string{"more than 2 objects"}},
		{"a bundle over the size cap", configMap("a", "", map[string]string{"x": strings.Repeat("y", 5000)}), small, []string{"larger than the 4096"}},
		{"an unknown type", "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g}\n", ex, []string{"Gadget g (document 1)", "does not serve example.com/v1"}},
	}
	for _, tt := range bad {
		t.Run(tt.name+" is rejected", func(t *testing.T) {
			_, err := tt.ex.Execute(t.Context(), task(t, "bad", 1, taskspec.Manifests{Release: "web", Namespace: s.target, Bundle: tt.bundle}))
			wantTerminal(t, err, manifests.ErrInvalidBundle, tt.want...)
			if configMapExists(t, s.target, "a") {
				t.Fatal("a rejected bundle wrote something")
			}
		})
	}
	t.Run("a namespaced object without a namespace is rejected", func(t *testing.T) {
		_, err := ex.Execute(t.Context(), task(t, "bad", 1, taskspec.Manifests{Release: "web", Bundle: configMap("a", "", nil)}))
		wantTerminal(t, err, manifests.ErrInvalidBundle, "ConfigMap a (document 1) is namespaced and names no namespace")
	})
}

func mustCreateConfigMap(t *testing.T, ns, name string, labels, data map[string]string) *corev1.ConfigMap {
	t.Helper()
	cm, err := env.Client.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Data: data,
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm
}
