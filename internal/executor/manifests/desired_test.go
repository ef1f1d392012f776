package manifests_test

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"

	"github.com/outposthq/outpost/internal/executor/manifests"
	"github.com/outposthq/outpost/internal/executor/manifests/bundle"
	"github.com/outposthq/outpost/internal/taskspec"
)

func TestDesiredIsWhatTheExecutorApplies(t *testing.T) {
	s := leastPrivilege(t)
	spec := taskspec.Manifests{Release: "shop", Namespace: s.target, Revision: 3, Bundle: configMap("settings", "", map[string]string{"color": "blue"}) + "---\n" + service}
	execute(t, s.executor(t), task(t, "t1", 1, spec))

	disco, err := discovery.NewDiscoveryClientForConfig(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))
	objs, err := manifests.Desired(t.Context(), mapper, &spec, []byte(spec.Bundle), spec.Revision, bundle.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 {
		t.Fatalf("got %d objects, want 2", len(objs))
	}
	for _, o := range objs {
		if !o.Namespaced || o.Object.GetNamespace() != s.target {
			t.Errorf("%s: namespaced %v in %q, want namespaced in %s", o.Object.GetName(), o.Namespaced, o.Object.GetNamespace(), s.target)
		}
		live, err := env.Client.CoreV1().RESTClient().Get().AbsPath("/api/v1/namespaces", s.target, o.Resource.Resource, o.Object.GetName()).Do(t.Context()).Get()
		if err != nil {
			t.Fatalf("%s: %v", o.Resource.Resource, err)
		}
		liveLabels := live.(metav1.Object).GetLabels()
		for k, v := range o.Object.GetLabels() {
			if liveLabels[k] != v {
				t.Errorf("%s %s: label %s=%q, the executor applied %q", o.Object.GetKind(), o.Object.GetName(), k, v, liveLabels[k])
			}
		}
		if o.Object.GetLabels()[manifests.LabelRevision] != "3" {
			t.Errorf("%s: revision label %q, want 3", o.Object.GetName(), o.Object.GetLabels()[manifests.LabelRevision])
		}
	}
}

func TestDesiredRejectsAnUnknownType(t *testing.T) {
	s := leastPrivilege(t)
	disco, err := discovery.NewDiscoveryClientForConfig(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))
	spec := taskspec.Manifests{Release: "shop", Namespace: s.target, Bundle: "apiVersion: example.com/v1\nkind: Gizmo\nmetadata:\n  name: g\n"}
	if _, err := manifests.Desired(t.Context(), mapper, &spec, []byte(spec.Bundle), 1, bundle.Limits{}); err == nil {
		t.Fatal("an unknown type was accepted")
	}
}

func TestRecordedRevisionFollowsTheInventory(t *testing.T) {
	s := leastPrivilege(t)
	rev, err := manifests.RecordedRevision(t.Context(), env.Client.CoreV1(), s.agentNS, "shop")
	if err != nil || rev != manifests.Removed {
		t.Fatalf("before any task: revision %d, %v; want Removed", rev, err)
	}
	spec := taskspec.Manifests{Release: "shop", Namespace: s.target, Revision: 4, Bundle: configMap("settings", "", nil)}
	execute(t, s.executor(t), task(t, "t1", 1, spec))
	rev, err = manifests.RecordedRevision(t.Context(), env.Client.CoreV1(), s.agentNS, "shop")
	if err != nil || rev != 4 {
		t.Fatalf("after revision 4: revision %d, %v", rev, err)
	}
	execute(t, s.executor(t), task(t, "t2", 1, taskspec.Manifests{Release: "shop", Delete: true}))
	rev, err = manifests.RecordedRevision(t.Context(), env.Client.CoreV1(), s.agentNS, "shop")
	if err != nil || rev != manifests.Removed {
		t.Fatalf("after the release was deleted: revision %d, %v; want Removed", rev, err)
	}
}
