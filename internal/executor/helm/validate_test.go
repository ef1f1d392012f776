package helm_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outposthq/outpost/internal/executor/helm"
	"github.com/outposthq/outpost/internal/taskspec"
)

// noWidget turns off the chart's CRD-backed object, for agents that may
// not install CRDs.
var noWidget = map[string]any{"widget": map[string]any{"enabled": false}}

// nothingWritten checks that a failed first install left no trace: no
// Deployment and no release record.
func nothingWritten(t *testing.T, ns, release string) {
	t.Helper()
	if _, err := env.Client.AppsV1().Deployments(ns).Get(t.Context(), release+"-web", getOpts); !apierrors.IsNotFound(err) {
		t.Errorf("Deployment after a failed validation: %v, want not found", err)
	}
	recs, err := env.Client.CoreV1().Secrets(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "owner=helm,name=" + release})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs.Items) != 0 {
		t.Errorf("%d release records after a failed validation, want none", len(recs.Items))
	}
}

func TestValidationComesBeforeTheFirstWrite(t *testing.T) {
	s := admin(t)
	ex := s.executor(t)
	chart := packChart(t, "shop", nil)

	t.Run("an object of no release is not taken over", func(t *testing.T) {
		foreign := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "taken-config", Namespace: s.target}, Data: map[string]string{"owner": "customer"}}
		if _, err := env.Client.CoreV1().ConfigMaps(s.target).Create(t.Context(), foreign, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err := run(t, ex, "collide-1", shop(s.target, "taken", chart, noWidget))
		wantPhase(t, err, helm.PhaseValidate, true, helm.ErrCollision, "ConfigMap "+s.target+"/taken-config exists and belongs to no Helm release")
		nothingWritten(t, s.target, "taken")
		cm, err := env.Client.CoreV1().ConfigMaps(s.target).Get(t.Context(), "taken-config", getOpts)
		if err != nil || cm.Data["owner"] != "customer" {
			t.Fatalf("the customer's ConfigMap: %v %v, want it untouched", cm, err)
		}
	})

	t.Run("adopt takes it over", func(t *testing.T) {
		spec := shop(s.target, "taken", chart, noWidget)
		spec.Adopt = true
		mustRun(t, ex, "collide-2", spec)
		cm, err := env.Client.CoreV1().ConfigMaps(s.target).Get(t.Context(), "taken-config", getOpts)
		if err != nil {
			t.Fatal(err)
		}
		if cm.Annotations["meta.helm.sh/release-name"] != "taken" || cm.Data["greeting"] != "hello" {
			t.Errorf("adopted ConfigMap annotations %v data %v", cm.Annotations, cm.Data)
		}
	})

	t.Run("another release's object is not taken over", func(t *testing.T) {
		mustRun(t, ex, "other-1", shop(s.target, "first", chart, noWidget))
		edits := map[string]string{"templates/configmap.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: first-config\ndata:\n  x: \"y\"\n"}
		_, err := run(t, ex, "other-2", shop(s.target, "second", packChart(t, "shop", edits), noWidget))
		wantPhase(t, err, helm.PhaseValidate, true, helm.ErrCollision, "belongs to Helm release "+s.target+"/first")
	})

	t.Run("a chart may not set Helm's ownership annotations itself", func(t *testing.T) {
		edits := map[string]string{"templates/configmap.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: claim\n  annotations:\n    meta.helm.sh/release-name: claim\n"}
		_, err := run(t, ex, "claim-1", shop(s.target, "claim", packChart(t, "shop", edits), noWidget))
		wantPhase(t, err, helm.PhaseValidate, true, helm.ErrInvalidChart, "which only Helm may set")
		nothingWritten(t, s.target, "claim")
	})

	t.Run("the deny list rejects a privileged pod", func(t *testing.T) {
		edits := map[string]string{"templates/pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: root\nspec:\n  containers:\n    - name: c\n      image: busybox\n      securityContext:\n        privileged: true\n"}
		_, err := run(t, ex, "deny-1", shop(s.target, "denied", packChart(t, "shop", edits), noWidget))
		wantPhase(t, err, helm.PhaseValidate, true, helm.ErrDenied, "Pod "+s.target+"/root")
		nothingWritten(t, s.target, "denied")
	})

	t.Run("a binding to cluster-admin is denied", func(t *testing.T) {
		edits := map[string]string{"templates/crb.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: escalate\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: cluster-admin\nsubjects:\n  - kind: ServiceAccount\n    name: default\n    namespace: default\n"}
		_, err := run(t, ex, "deny-2", shop(s.target, "escalate", packChart(t, "shop", edits), noWidget))
		wantPhase(t, err, helm.PhaseValidate, true, helm.ErrDenied, "cluster-admin")
		nothingWritten(t, s.target, "escalate")
	})

	t.Run("values that break the chart's schema fail the render", func(t *testing.T) {
		_, err := run(t, ex, "schema-1", shop(s.target, "badvalues", chart, map[string]any{"replicas": "three"}))
		wantPhase(t, err, helm.PhaseRender, true, nil, "replicas")
		nothingWritten(t, s.target, "badvalues")
	})

	t.Run("an object the API server rejects fails the dry run", func(t *testing.T) {
		edits := map[string]string{"templates/service.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}-web\nspec:\n  ports:\n    - port: 99999\n"}
		_, err := run(t, ex, "dry-1", shop(s.target, "rejected", packChart(t, "shop", edits), noWidget))
		wantPhase(t, err, helm.PhaseValidate, true, helm.ErrDryRun, "Service "+s.target+"/rejected-web")
		nothingWritten(t, s.target, "rejected")
	})

	t.Run("a kind the cluster does not serve is named", func(t *testing.T) {
		edits := map[string]string{"templates/x.yaml": "apiVersion: nowhere.example.com/v1\nkind: Gadget\nmetadata:\n  name: g\n"}
		_, err := run(t, ex, "kind-1", shop(s.target, "unknown", packChart(t, "shop", edits), noWidget))
		wantPhase(t, err, helm.PhaseValidate, true, helm.ErrInvalidChart, "Gadget")
		nothingWritten(t, s.target, "unknown")
	})

	t.Run("an upgrade of a release that does not exist says so", func(t *testing.T) {
		spec := shop(s.target, "absent", chart, noWidget)
		spec.Action = taskspec.HelmUpgrade
		_, err := run(t, ex, "upgrade-absent", spec)
		wantPhase(t, err, helm.PhaseRender, true, helm.ErrNotFound, "use the install action")
	})
}

func TestLeastPrivilege(t *testing.T) {
	s := leastPrivilege(t)
	ex := s.executor(t)
	chart := packChart(t, "shop", nil)

	t.Run("CRDs the agent may not create fail validation and name the permission", func(t *testing.T) {
		_, err := run(t, ex, "lp-1", shop(s.target, "lp", chart, nil))
		wantPhase(t, err, helm.PhaseValidate, true, nil, `"create" on customresourcedefinitions.apiextensions.k8s.io (cluster-scoped)`)
		nothingWritten(t, s.target, "lp")
	})

	t.Run("without CRDs the namespaced release installs", func(t *testing.T) {
		spec := shop(s.target, "lp", chart, noWidget)
		spec.SkipCRDs = true
		res := mustRun(t, ex, "lp-2", spec)
		if res.Status != "deployed" {
			t.Fatalf("result %+v", res)
		}
	})

	t.Run("an object in a namespace it may not write is refused before any write", func(t *testing.T) {
		other := env.Namespace(t, "other")
		edits := map[string]string{"templates/elsewhere.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: elsewhere\n  namespace: " + other + "\n"}
		spec := shop(s.target, "reach", packChart(t, "shop", edits), noWidget)
		spec.SkipCRDs = true
		_, err := run(t, ex, "lp-3", spec)
		wantPhase(t, err, helm.PhaseValidate, true, nil, `"create" on configmaps in namespace "`+other+`"`)
		nothingWritten(t, s.target, "reach")
	})

	t.Run("lookup sees only what the agent may read", func(t *testing.T) {
		edits := map[string]string{"templates/lookup.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: looked\ndata:\n  found: {{ (lookup \"v1\" \"Secret\" \"kube-system\" \"\") | toJson | quote }}\n"}
		spec := shop(s.target, "looker", packChart(t, "shop", edits), noWidget)
		spec.SkipCRDs = true
		_, err := run(t, ex, "lp-4", spec)
		wantPhase(t, err, helm.PhaseRender, true, nil, "forbidden")
	})
}
