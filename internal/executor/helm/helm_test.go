package helm_test

import (
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/outposthq/outpost/internal/executor/helm"
	"github.com/outposthq/outpost/internal/taskspec"
)

var widgets = schema.GroupVersionResource{Group: "shop.example.com", Version: "v1", Resource: "widgets"}

func TestReleaseLifecycle(t *testing.T) {
	s := admin(t)
	ex := s.executor(t)
	chart := packChart(t, "shop", nil)

	t.Run("install creates the CRDs, the objects, the subchart's objects and labels them", func(t *testing.T) {
		res := mustRun(t, ex, "install-1", shop(s.target, "web", chart, nil))
		if res.Revision != 1 || res.Status != "deployed" || res.Chart != "shop-1.2.0" || res.AppVersion != "2.0" {
			t.Fatalf("result %+v, want revision 1 deployed of shop-1.2.0", res)
		}
		if !strings.Contains(res.Notes, "web 1.2.0 is deployed in "+s.target) {
			t.Errorf("notes %q", res.Notes)
		}
		if res.DryRun == 0 {
			t.Errorf("no object was dry-run before the apply")
		}
		want := map[string]string{"ConfigMap/web-config": "created", "ConfigMap/web-cache": "created", "Deployment/web-web": "created", "Service/web-web": "created", "Widget/web-widget": "created"}
		got := map[string]string{}
		for _, o := range res.Objects {
			got[o.Kind+"/"+o.Name] = o.Outcome
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("object %s: outcome %q, want %q (all: %v)", k, got[k], v, got)
			}
		}
		cm, err := env.Client.CoreV1().ConfigMaps(s.target).Get(t.Context(), "web-config", getOpts)
		if err != nil {
			t.Fatal(err)
		}
		if cm.Labels[helm.LabelRelease] != "web" || cm.Annotations["meta.helm.sh/release-name"] != "web" || cm.Data["greeting"] != "hello" {
			t.Errorf("ConfigMap labels %v annotations %v data %v", cm.Labels, cm.Annotations, cm.Data)
		}
		w, err := dyn(t).Resource(widgets).Namespace(s.target).Get(t.Context(), "web-widget", getOpts)
		if err != nil {
			t.Fatal(err)
		}
		if w.GetLabels()[helm.LabelRelease] != "web" {
			t.Errorf("Widget labels %v", w.GetLabels())
		}
	})

	t.Run("upgrade applies new values", func(t *testing.T) {
		res := mustRun(t, ex, "upgrade-2", shop(s.target, "web", chart, map[string]any{"greeting": "bye", "widget": map[string]any{"enabled": false}}))
		if res.Revision != 2 || res.Status != "deployed" {
			t.Fatalf("result %+v, want revision 2 deployed", res)
		}
		cm, err := env.Client.CoreV1().ConfigMaps(s.target).Get(t.Context(), "web-config", getOpts)
		if err != nil {
			t.Fatal(err)
		}
		if cm.Data["greeting"] != "bye" || cm.Data["revision"] != "2" {
			t.Errorf("ConfigMap data %v, want the new greeting at revision 2", cm.Data)
		}
		if _, err := dyn(t).Resource(widgets).Namespace(s.target).Get(t.Context(), "web-widget", getOpts); !apierrors.IsNotFound(err) {
			t.Errorf("the Widget the new revision dropped: %v, want it deleted", err)
		}
	})

	t.Run("rollback returns to revision 1", func(t *testing.T) {
		res := mustRun(t, ex, "rollback-3", taskspec.Helm{Action: taskspec.HelmRollback, Release: "web", Namespace: s.target, Revision: 1})
		if res.Revision != 3 || res.Status != "deployed" {
			t.Fatalf("result %+v, want revision 3 deployed", res)
		}
		cm, err := env.Client.CoreV1().ConfigMaps(s.target).Get(t.Context(), "web-config", getOpts)
		if err != nil {
			t.Fatal(err)
		}
		if cm.Data["greeting"] != "hello" {
			t.Errorf("ConfigMap data %v, want revision 1's greeting", cm.Data)
		}
		if _, err := dyn(t).Resource(widgets).Namespace(s.target).Get(t.Context(), "web-widget", getOpts); err != nil {
			t.Errorf("revision 1's Widget: %v", err)
		}
	})

	t.Run("a retry of the rollback reports it instead of rolling back again", func(t *testing.T) {
		res := mustRun(t, ex, "rollback-3", taskspec.Helm{Action: taskspec.HelmRollback, Release: "web", Namespace: s.target, Revision: 1})
		if res.Revision != 3 || !res.Unchanged {
			t.Fatalf("result %+v, want revision 3 reported as unchanged", res)
		}
	})

	t.Run("history lists the revisions as helm does", func(t *testing.T) {
		res := mustRun(t, ex, "history-4", taskspec.Helm{Action: taskspec.HelmHistory, Release: "web", Namespace: s.target})
		if len(res.History) != 3 {
			t.Fatalf("history %+v, want 3 revisions", res.History)
		}
		want := []string{"deployed", "superseded", "superseded"}
		for i, h := range res.History {
			if h.Revision != 3-i || h.Status != want[i] {
				t.Errorf("history[%d] = %+v, want revision %d %s", i, h, 3-i, want[i])
			}
		}
		if !strings.Contains(res.History[0].Description, "Rollback to 1") {
			t.Errorf("revision 3 description %q, want it to say Rollback to 1", res.History[0].Description)
		}
	})

	t.Run("status says which objects are present", func(t *testing.T) {
		res := mustRun(t, ex, "status-5", taskspec.Helm{Action: taskspec.HelmStatus, Release: "web", Namespace: s.target})
		if res.Revision != 3 || len(res.Objects) == 0 {
			t.Fatalf("status %+v", res)
		}
		for _, o := range res.Objects {
			if o.Outcome != helm.OutcomePresent {
				t.Errorf("object %s/%s: %s, want present", o.Kind, o.Name, o.Outcome)
			}
		}
	})

	t.Run("uninstall deletes the objects and the records", func(t *testing.T) {
		res := mustRun(t, ex, "uninstall-6", taskspec.Helm{Action: taskspec.HelmUninstall, Release: "web", Namespace: s.target})
		if res.Status != "uninstalled" {
			t.Fatalf("result %+v", res)
		}
		if _, err := env.Client.CoreV1().ConfigMaps(s.target).Get(t.Context(), "web-config", getOpts); !apierrors.IsNotFound(err) {
			t.Errorf("ConfigMap after uninstall: %v, want not found", err)
		}
		again := mustRun(t, ex, "uninstall-7", taskspec.Helm{Action: taskspec.HelmUninstall, Release: "web", Namespace: s.target})
		if !again.Unchanged {
			t.Errorf("second uninstall %+v, want unchanged", again)
		}
		_, err := run(t, ex, "status-8", taskspec.Helm{Action: taskspec.HelmStatus, Release: "web", Namespace: s.target})
		wantPhase(t, err, helm.PhaseRender, true, helm.ErrNotFound, "release not found")
	})
}

func TestRetryOfAFinishedTaskReportsItsRevision(t *testing.T) {
	s := admin(t)
	ex := s.executor(t)
	chart := packChart(t, "shop", nil)
	spec := shop(s.target, "api", chart, map[string]any{"widget": map[string]any{"enabled": false}})
	first := mustRun(t, ex, "task-a", spec)
	again := mustRun(t, ex, "task-a", spec)
	if again.Revision != first.Revision || !again.Unchanged {
		t.Fatalf("retry %+v, want revision %d reported as unchanged", again, first.Revision)
	}
	next := mustRun(t, ex, "task-b", spec)
	if next.Revision != first.Revision+1 || next.Unchanged {
		t.Fatalf("another task %+v, want a new revision", next)
	}
}

func TestAReleaseWhoseCRDWasRemovedCanStillBeReadAndUninstalled(t *testing.T) {
	s := admin(t)
	ex := s.executor(t)
	crd := `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gizmos.removed.example.com
spec:
  group: removed.example.com
  scope: Namespaced
  names: {plural: gizmos, singular: gizmo, kind: Gizmo}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`
	edits := map[string]string{
		"crds/gizmos.yaml":     crd,
		"templates/gizmo.yaml": "apiVersion: removed.example.com/v1\nkind: Gizmo\nmetadata:\n  name: {{ .Release.Name }}-gizmo\n",
	}
	mustRun(t, ex, "gizmo-1", shop(s.target, "gizmo", packChart(t, "shop", edits), noWidget))
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	if err := dyn(t).Resource(crdGVR).Delete(t.Context(), "gizmos.removed.example.com", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, err := run(t, ex, "gizmo-status", taskspec.Helm{Action: taskspec.HelmStatus, Release: "gizmo", Namespace: s.target})
		if err != nil {
			t.Fatal(err)
		}
		missing := ""
		for _, o := range status.Objects {
			if o.Kind == "Gizmo" {
				missing = o.Outcome
			}
		}
		if missing == helm.OutcomeMissing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Gizmo is %q after its CRD was deleted, want missing", missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
	res := mustRun(t, ex, "gizmo-uninstall", taskspec.Helm{Action: taskspec.HelmUninstall, Release: "gizmo", Namespace: s.target})
	if res.Status != "uninstalled" {
		t.Fatalf("uninstall %+v", res)
	}
}
