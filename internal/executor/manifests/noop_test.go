package manifests_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"

	"github.com/outposthq/outpost/internal/executor/manifests"
	"github.com/outposthq/outpost/internal/taskspec"
)

// requests counts what an executor asks of the API server about
// ConfigMaps, Services and Deployments.
type requests struct {
	applies, dryRuns, gets, lists atomic.Int64
}

func (c *requests) hook() func(*manifests.Options) {
	return withHook(func(req *http.Request) error {
		path := req.URL.Path
		if !strings.Contains(path, "/configmaps") && !strings.Contains(path, "/services") && !strings.Contains(path, "/deployments") {
			return nil
		}
		switch {
		case req.Method == http.MethodPatch && strings.Contains(req.URL.RawQuery, "dryRun"):
			c.dryRuns.Add(1)
		case realApply(req):
			c.applies.Add(1)
		case req.Method == http.MethodGet && (strings.HasSuffix(path, "/configmaps") || strings.HasSuffix(path, "/services") || strings.HasSuffix(path, "/deployments")):
			c.lists.Add(1)
		case req.Method == http.MethodGet:
			c.gets.Add(1)
		}
		return nil
	})
}

func (c *requests) String() string {
	return fmt.Sprintf("%d applies, %d dry-runs, %d GETs, %d LISTs", c.applies.Load(), c.dryRuns.Load(), c.gets.Load(), c.lists.Load())
}

// waitPastLastApply waits until the API server's clock is two seconds
// past the last apply: it stamps managedFields to the second, and the
// executor trusts a dry-run that shows no change only once its clock has
// moved on from the object's last change (see manifests.Unchanged).
func waitPastLastApply() { time.Sleep(2 * time.Second) }

func configMaps(n int, data map[string]string) []string {
	docs := make([]string, n)
	for i := range docs {
		docs[i] = configMap(fmt.Sprintf("cm-%d", i), "", data)
	}
	return docs
}

func TestNoOpTaskSendsNoApply(t *testing.T) {
	s := leastPrivilege(t)
	foreign := configMap("foreign", s.target, map[string]string{"owner": "someone else"})
	createConfigMap(t, s.target, "foreign", map[string]string{"owner": "someone else"})
	docs := append(configMaps(manifests.ListMin+2, map[string]string{"v": "1"}), service, deployment, foreign)
	spec := taskspec.Manifests{Release: "quiet", Namespace: s.target, Bundle: join(docs...)}
	first := execute(t, s.executor(t), task(t, "q1", 1, spec))
	if first.Counts.Created != len(docs)-1 || first.Counts.Skipped != 1 {
		t.Fatalf("first task: counts %+v", first.Counts)
	}
	waitPastLastApply()

	var n requests
	again := execute(t, s.executor(t, n.hook()), task(t, "q2", 1, spec))
	t.Run("every object is reported unchanged and the unmanaged one skipped", func(t *testing.T) {
		want := map[string]string{"Service/web": "unchanged", "Deployment/web": "unchanged",
			"ConfigMap/foreign": "skipped: exists and is not managed by outpost release quiet"}
		for i := range manifests.ListMin + 2 {
			want[fmt.Sprintf("ConfigMap/cm-%d", i)] = "unchanged"
		}
		wantOutcomes(t, again, want)
		if !again.DryRun.OK || again.DryRun.Objects != len(docs)-1 {
			t.Fatalf("dry-run %+v, want every written object dry-run", again.DryRun)
		}
	})
	t.Run("no object is applied for real, each is dry-run once", func(t *testing.T) {
		if n.applies.Load() != 0 || n.dryRuns.Load() != int64(len(docs)-1) {
			t.Fatalf("%v; want 0 applies and %d dry-runs", &n, len(docs)-1)
		}
	})
	t.Run("the ConfigMaps are read with one LIST, the others with a GET each", func(t *testing.T) {
		if n.lists.Load() != 1 || n.gets.Load() != 2 {
			t.Fatalf("%v; want 1 LIST (ConfigMaps) and 2 GETs (Service, Deployment)", &n)
		}
	})
}

func TestChangedObjectIsApplied(t *testing.T) {
	s := leastPrivilege(t)
	// A fixed revision keeps the labels the same from task to task: only
	// the data tells the change.
	bundle := func(v string) taskspec.Manifests {
		return taskspec.Manifests{Release: "fixed", Namespace: s.target, Revision: 1,
			Bundle: join(append(configMaps(manifests.ListMin, nil), configMap("settings", "", map[string]string{"v": v}))...)}
	}
	execute(t, s.executor(t), task(t, "f1", 1, bundle("1")))
	others := map[string]string{}
	for i := range manifests.ListMin {
		others[fmt.Sprintf("ConfigMap/cm-%d", i)] = "unchanged"
	}
	withSettings := func(outcome string) map[string]string {
		out := map[string]string{"ConfigMap/settings": outcome}
		for k, v := range others {
			out[k] = v
		}
		return out
	}

	t.Run("a change right after the last apply is applied and reported configured", func(t *testing.T) {
		res := execute(t, s.executor(t), task(t, "f2", 1, bundle("2")))
		wantOutcomes(t, res, withSettings("configured"))
		wantData(t, s.target, "settings", "v", "2")
	})
	waitPastLastApply()
	t.Run("a change under the same revision later is applied, and only it", func(t *testing.T) {
		var n requests
		res := execute(t, s.executor(t, n.hook()), task(t, "f3", 1, bundle("3")))
		wantOutcomes(t, res, withSettings("configured"))
		wantData(t, s.target, "settings", "v", "3")
		if n.applies.Load() != 1 {
			t.Fatalf("%v; want 1 apply", &n)
		}
	})
	t.Run("a change someone else made is undone and reported configured", func(t *testing.T) {
		patch := []byte(`{"data":{"v":"edited"}}`)
		if _, err := env.Client.CoreV1().ConfigMaps(s.target).Patch(t.Context(), "settings", types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
			t.Fatal(err)
		}
		var n requests
		res := execute(t, s.executor(t, n.hook()), task(t, "f4", 1, bundle("3")))
		wantOutcomes(t, res, withSettings("configured"))
		wantData(t, s.target, "settings", "v", "3")
		if n.applies.Load() != 1 {
			t.Fatalf("%v; want 1 apply", &n)
		}
	})
}

// TestDryRunSignal pins down what the no-change check relies on, on the
// real API server.
func TestDryRunSignal(t *testing.T) {
	ns := env.Namespace(t, "signal")
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	dyn := dynamic.NewForConfigOrDie(env.Config).Resource(gvr).Namespace(ns)
	meta := metadata.NewForConfigOrDie(env.Config).Resource(gvr).Namespace(ns)
	apply := func(v string, dryRun bool) *unstructured.Unstructured {
		t.Helper()
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "probe", "labels": map[string]any{"app": "probe"}},
			"data":     map[string]any{"v": v},
		}}
		opts := metav1.ApplyOptions{FieldManager: manifests.FieldManager, Force: true}
		if dryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		out, err := dyn.Apply(t.Context(), "probe", obj, opts)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	apply("1", false)
	live, err := meta.Get(t.Context(), "probe", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitPastLastApply()
	now := time.Now().Unix()

	t.Run("an unchanged dry-run returns the live metadata", func(t *testing.T) {
		dry := apply("1", true)
		if dry.GetResourceVersion() != live.ResourceVersion || !manifests.Unchanged(&live.ObjectMeta, dry, now) {
			t.Fatalf("dry-run metadata %v, want the live %v", dry.Object["metadata"], live.ObjectMeta)
		}
	})
	t.Run("a changed dry-run keeps the resourceVersion but not the metadata", func(t *testing.T) {
		dry := apply("2", true)
		if dry.GetResourceVersion() != live.ResourceVersion {
			t.Fatalf("dry-run resourceVersion %s, live %s: a dry-run writes nothing", dry.GetResourceVersion(), live.ResourceVersion)
		}
		if manifests.Unchanged(&live.ObjectMeta, dry, now) {
			t.Fatalf("dry-run of a change taken for no change: %v", dry.Object["metadata"])
		}
	})
	t.Run("no change is trusted within the second of the last apply", func(t *testing.T) {
		dry := apply("1", true)
		if manifests.Unchanged(&live.ObjectMeta, dry, live.ManagedFields[0].Time.Unix()+1) {
			t.Fatal("trusted a dry-run sent within a second of the last apply")
		}
	})
}

func createConfigMap(t *testing.T, ns, name string, data map[string]string) {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Create(t.Context(), cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func wantData(t *testing.T, ns, name, key, value string) {
	t.Helper()
	cm, err := env.Client.CoreV1().ConfigMaps(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data[key] != value {
		t.Fatalf("ConfigMap %s/%s data %v, want %s=%s", ns, name, cm.Data, key, value)
	}
}
