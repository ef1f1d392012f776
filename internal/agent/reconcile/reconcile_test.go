package reconcile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/outposthq/outpost/internal/agent/reconcile"
	"github.com/outposthq/outpost/internal/executor/manifests"
	"github.com/outposthq/outpost/internal/keylock"
	"github.com/outposthq/outpost/internal/taskspec"
)

func TestAnEditedManagedFieldIsCorrected(t *testing.T) {
	s := newSetup(t)
	rel := s.webRelease(t, "web", "")
	r := s.start(t, []reconcile.Release{rel})
	r.reports.wait(t, "the in-sync report", inSync("web"))

	s.edit(t, "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "nginx:evil" })

	waitFor(t, "the image to be restored", func() bool { return s.image(t, "web") == "nginx:1.27" })
	d := r.reports.wait(t, "the correction report", corrected("web", "Deployment", "web"))
	if got := object(t, d, "Deployment", "web").Fields; !slices.Equal(got, []string{imagePath}) {
		t.Errorf("drifted fields %v, want [%s]", got, imagePath)
	}
	if !d.InSync() || d.Revision != 1 || d.Mode != reconcile.ModeCorrect {
		t.Errorf("report %+v: want an in-sync correction at revision 1 in mode correct", d)
	}
	ev := s.waitEvent(t, "Deployment", "web", reconcile.ReasonDriftCorrected, imagePath)
	if ev.Type != "Normal" || strings.Contains(ev.Message, "nginx") {
		t.Errorf("event %q (%s): want a Normal event naming the field and not its value", ev.Message, ev.Type)
	}
	if n := r.Stats().Corrections; n != 1 {
		t.Errorf("%d corrections, want 1", n)
	}
}

func TestADeletedObjectIsRecreated(t *testing.T) {
	s := newSetup(t)
	rel := s.webRelease(t, "web", "")
	r := s.start(t, []reconcile.Release{rel})
	r.reports.wait(t, "the in-sync report", inSync("web"))
	old := s.deployment(t, "web").UID

	if err := env.Client.AppsV1().Deployments(s.target).Delete(t.Context(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	waitFor(t, "the Deployment to be re-created", func() bool {
		d, err := env.Client.AppsV1().Deployments(s.target).Get(t.Context(), "web", metav1.GetOptions{})
		return err == nil && d.UID != old
	})
	d := r.reports.wait(t, "the correction report", corrected("web", "Deployment", "web"))
	if o := object(t, d, "Deployment", "web"); !o.Deleted {
		t.Errorf("report %+v: want the object reported deleted", o)
	}
	if got := s.deployment(t, "web").Labels[manifests.LabelRelease]; got != "web" {
		t.Errorf("re-created with release label %q, want web", got)
	}
}

func TestDetectModeReportsAndNeverWrites(t *testing.T) {
	s := newSetup(t)
	rel := s.webRelease(t, "web", reconcile.ModeDetect)
	r := s.start(t, []reconcile.Release{rel})
	r.reports.wait(t, "the in-sync report", inSync("web"))

	s.edit(t, "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "nginx:evil" })

	d := r.reports.wait(t, "the drift report", func(d reconcile.Drift) bool { return d.Release == "web" && len(d.Objects) > 0 })
	if d.Corrected || d.InSync() || d.Mode != reconcile.ModeDetect {
		t.Errorf("report %+v: want an uncorrected drift in mode detect", d)
	}
	if got := object(t, d, "Deployment", "web").Fields; !slices.Equal(got, []string{imagePath}) {
		t.Errorf("drifted fields %v, want [%s]", got, imagePath)
	}
	s.waitEvent(t, "Deployment", "web", reconcile.ReasonDriftDetected, imagePath)
	if got := s.image(t, "web"); got != "nginx:evil" {
		t.Errorf("image %q: detect mode changed the object", got)
	}
	for _, w := range s.writes.since(0) {
		if strings.Contains(w, "/deployments/web") && !strings.Contains(w, "dryRun=All") {
			t.Errorf("detect mode wrote: %s", w)
		}
	}
	if n := r.Stats().Corrections; n != 0 {
		t.Errorf("%d corrections in detect mode", n)
	}

	// Putting the field back by hand ends the episode.
	s.edit(t, "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "nginx:1.27" })
	waitFor(t, "the back-in-sync report", func() bool {
		all := r.reports.all()
		return len(all) > 0 && inSync("web")(all[len(all)-1])
	})
	drifts := 0
	for _, d := range r.reports.all() {
		if len(d.Objects) > 0 {
			drifts++
		}
	}
	if drifts != 1 {
		t.Errorf("%d drift reports for one episode, want 1: %+v", drifts, r.reports.all())
	}
}

func TestIgnoredFieldsAreNeitherDriftNorReverted(t *testing.T) {
	s := newSetup(t)
	rel := s.webRelease(t, "web", "", reconcile.IgnoreRule{Group: "apps", Kind: "Deployment", Paths: []string{"/spec/replicas"}})
	r := s.start(t, []reconcile.Release{rel})
	r.reports.wait(t, "the in-sync report", inSync("web"))
	checks := r.Stats().Checks

	s.edit(t, "web", func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To[int32](5) })
	waitFor(t, "the replicas edit to be checked", func() bool { return r.Stats().Checks > checks })
	s.edit(t, "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "nginx:evil" })

	d := r.reports.wait(t, "the correction report", corrected("web", "Deployment", "web"))
	if got := object(t, d, "Deployment", "web").Fields; !slices.Equal(got, []string{imagePath}) {
		t.Errorf("drifted fields %v, want only [%s]", got, imagePath)
	}
	dep := s.deployment(t, "web")
	if dep.Spec.Template.Spec.Containers[0].Image != "nginx:1.27" {
		t.Errorf("image %q not corrected", dep.Spec.Template.Spec.Containers[0].Image)
	}
	if *dep.Spec.Replicas != 5 {
		t.Errorf("replicas %d: the correction reverted an ignored field", *dep.Spec.Replicas)
	}
	for _, d := range r.reports.all() {
		if len(d.Objects) > 0 && !d.Corrected {
			t.Errorf("unexpected drift report %+v", d)
		}
	}
}

func TestFieldsOfOtherManagersAreNotDrift(t *testing.T) {
	s := newSetup(t)
	rel := s.webRelease(t, "web", "")
	r := s.start(t, []reconcile.Release{rel})
	r.reports.wait(t, "the in-sync report", inSync("web"))
	checks := r.Stats().Checks

	// A sidecar injector adds a container and an annotation with its own
	// field manager.
	patch := map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "annotations": map[string]any{"injector.example.com/injected": "true"}},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"containers": []any{
			map[string]any{"name": "sidecar", "image": "envoy:1"},
		}}}},
	}
	raw, err := json.Marshal(patch)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.AppsV1().Deployments(s.target).Patch(t.Context(), "web", types.ApplyPatchType, raw, metav1.PatchOptions{FieldManager: "injector"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the injection to be checked", func() bool { return r.Stats().Checks > checks })
	// A real drift afterwards shows what the reconciler thought of it.
	s.edit(t, "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "nginx:evil" })
	d := r.reports.wait(t, "the correction report", corrected("web", "Deployment", "web"))
	if got := object(t, d, "Deployment", "web").Fields; !slices.Equal(got, []string{imagePath}) {
		t.Errorf("drifted fields %v, want only [%s]", got, imagePath)
	}
	dep := s.deployment(t, "web")
	if len(dep.Spec.Template.Spec.Containers) != 2 || dep.Annotations["injector.example.com/injected"] != "true" {
		t.Errorf("containers %d, annotations %v: the correction removed what another manager set", len(dep.Spec.Template.Spec.Containers), dep.Annotations)
	}
	for _, d := range r.reports.all() {
		if len(d.Objects) > 0 && !d.Corrected {
			t.Errorf("unexpected drift report %+v", d)
		}
	}
}

func TestAChangedOrRemovedLabelIsCorrected(t *testing.T) {
	tests := []struct {
		name  string
		label string
		edit  func(labels map[string]string)
	}{
		{name: "removing the release label takes the object out of the watch and is corrected", label: manifests.LabelRelease,
			edit: func(l map[string]string) { delete(l, manifests.LabelRelease) }},
		{name: "removing the revision label is corrected", label: manifests.LabelRevision,
			edit: func(l map[string]string) { delete(l, manifests.LabelRevision) }},
		{name: "moving the object to another release is corrected", label: manifests.LabelRelease,
			edit: func(l map[string]string) { l[manifests.LabelRelease] = "other" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSetup(t)
			rel := s.webRelease(t, "web", "")
			r := s.start(t, []reconcile.Release{rel})
			r.reports.wait(t, "the in-sync report", inSync("web"))

			cm, err := env.Client.CoreV1().ConfigMaps(s.target).Get(t.Context(), "web-config", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := cm.Labels[tt.label]
			tt.edit(cm.Labels)
			if _, err := env.Client.CoreV1().ConfigMaps(s.target).Update(t.Context(), cm, metav1.UpdateOptions{FieldManager: "kubectl-label"}); err != nil {
				t.Fatal(err)
			}

			waitFor(t, "the label to be restored", func() bool {
				cm, err := env.Client.CoreV1().ConfigMaps(s.target).Get(t.Context(), "web-config", metav1.GetOptions{})
				return err == nil && cm.Labels[tt.label] == want
			})
			d := r.reports.wait(t, "the correction report", corrected("web", "ConfigMap", "web-config"))
			field := "/metadata/labels/" + strings.ReplaceAll(tt.label, "/", "~1")
			if got := object(t, d, "ConfigMap", "web-config").Fields; !slices.Contains(got, field) {
				t.Errorf("drifted fields %v, want %s among them", got, field)
			}
		})
	}
}

func TestStatusUpdatesAreNotDrift(t *testing.T) {
	s := newSetup(t)
	rel := s.webRelease(t, "web", "")
	r := s.start(t, []reconcile.Release{rel})
	r.reports.wait(t, "the in-sync report", inSync("web"))
	checks, writes := r.Stats().Checks, s.writes.len()

	dep := s.deployment(t, "web")
	dep.Status.Replicas, dep.Status.ReadyReplicas, dep.Status.ObservedGeneration = 2, 2, dep.Generation
	if _, err := env.Client.AppsV1().Deployments(s.target).UpdateStatus(t.Context(), dep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the status update to be checked", func() bool { return r.Stats().Checks > checks })
	if got := s.writes.since(writes); len(got) > 0 {
		t.Errorf("a status update caused API writes: %v", got)
	}
	for _, d := range r.reports.all() {
		if len(d.Objects) > 0 {
			t.Errorf("unexpected drift report %+v", d)
		}
	}
}

func TestTheResyncCatchesMissedEvents(t *testing.T) {
	s := newSetup(t)
	rel := s.webRelease(t, "web", "")
	r := s.start(t, []reconcile.Release{rel}, func(o *reconcile.Options) { o.Resync = 500 * time.Millisecond })
	r.reports.wait(t, "the in-sync report", inSync("web"))
	reconcile.StopWatches(r.Reconciler)

	s.edit(t, "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "nginx:evil" })

	waitFor(t, "the image to be restored", func() bool { return s.image(t, "web") == "nginx:1.27" })
	r.reports.wait(t, "the correction report", corrected("web", "Deployment", "web"))
}

func TestAStaleDesiredStateAsksForARefresh(t *testing.T) {
	s := newSetup(t)
	rel := s.webRelease(t, "web", "")
	r := s.start(t, []reconcile.Release{rel}, func(o *reconcile.Options) { o.Resync = 300 * time.Millisecond })
	r.reports.wait(t, "the in-sync report", inSync("web"))

	// Revision 2 was applied by a task the hub has not told us about.
	spec2 := *rel.Manifests
	spec2.Revision = 2
	spec2.Bundle = strings.Replace(webBundle, "nginx:1.27", "nginx:1.28", 1)
	s.apply(t, spec2)

	waitFor(t, "NeedRefresh", func() bool { return slices.Contains(r.refresh.all(), "web") })
	// Each resync asks again until the caller hands a newer state over.
	waitFor(t, "NeedRefresh at two more resyncs", func() bool { return len(r.refresh.all()) >= 3 })
	if got := s.image(t, "web"); got != "nginx:1.28" {
		t.Fatalf("image %q: a stale desired state was applied over revision 2", got)
	}
	if n := r.Stats().Corrections; n != 0 {
		t.Errorf("%d corrections of a stale desired state", n)
	}

	// The caller fetches revision 2 and hands it over.
	rel2 := rel
	rel2.Revision, rel2.Manifests = 2, &spec2
	r.Update(rel2)
	s.edit(t, "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "nginx:evil" })
	waitFor(t, "the image to be restored to revision 2", func() bool { return s.image(t, "web") == "nginx:1.28" })
}

func TestReleasesLeavingTheDesiredSetAreLeftAlone(t *testing.T) {
	s := newSetup(t)
	rel := s.webRelease(t, "web", "")
	r := s.start(t, []reconcile.Release{rel})
	r.reports.wait(t, "the in-sync report", inSync("web"))

	r.SetDesired(nil)
	waitFor(t, "the watches to stop", func() bool { return r.Stats().Watches == 0 })
	s.edit(t, "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "nginx:evil" })
	if _, err := env.Client.AppsV1().Deployments(s.target).Get(t.Context(), "web", metav1.GetOptions{}); apierrors.IsNotFound(err) {
		t.Fatal("the reconciler deleted an object of a forgotten release")
	}
	if got := s.image(t, "web"); got != "nginx:evil" {
		t.Errorf("image %q: a forgotten release was corrected", got)
	}
}

func TestReportsSurviveAnUnreachableHub(t *testing.T) {
	s := newSetup(t)
	rel := s.webRelease(t, "web", "")
	r := s.start(t, []reconcile.Release{rel}, func(o *reconcile.Options) {
		o.ReportBackoff.Base, o.ReportBackoff.Max = 10*time.Millisecond, 100*time.Millisecond
	})
	r.reports.wait(t, "the in-sync report", inSync("web"))
	r.reports.setFailing(true)

	s.edit(t, "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "nginx:evil" })
	waitFor(t, "the image to be restored while the hub is down", func() bool { return s.image(t, "web") == "nginx:1.27" })
	r.reports.setFailing(false)
	r.reports.wait(t, "the correction report once the hub is back", corrected("web", "Deployment", "web"))
}

func TestAnObjectPrunedByANewerRevisionIsNotRecreated(t *testing.T) {
	s := newSetup(t)
	configMap := func(name string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n  color: blue\n"
	}
	spec := taskspec.Manifests{Release: "cfg", Namespace: s.target, Revision: 1, Bundle: configMap("old")}
	s.apply(t, spec)
	rel := reconcile.Release{Name: "cfg", Kind: reconcile.KindManifests, Revision: 1, Manifests: &spec}
	r := s.start(t, []reconcile.Release{rel}, func(o *reconcile.Options) { o.Resync = 300 * time.Millisecond })
	r.reports.wait(t, "the in-sync report", inSync("cfg"))

	// Revision 2 replaces the ConfigMap: its task prunes the old one, and
	// no object the reconciler watches carries the new revision.
	spec2 := spec
	spec2.Revision, spec2.Bundle = 2, configMap("new")
	s.apply(t, spec2)

	waitFor(t, "NeedRefresh", func() bool { return slices.Contains(r.refresh.all(), "cfg") })
	waitFor(t, "NeedRefresh at two more resyncs", func() bool { return len(r.refresh.all()) >= 3 })
	if _, err := env.Client.CoreV1().ConfigMaps(s.target).Get(t.Context(), "old", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the pruned ConfigMap is back (err %v)", err)
	}
}

func TestStatsDescribeTheFirstFullSync(t *testing.T) {
	s := newSetup(t)
	var b strings.Builder
	const n = 60
	for i := range n {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%d\ndata:\n  i: %q\n", i, fmt.Sprint(i))
	}
	spec := taskspec.Manifests{Release: "many", Namespace: s.target, Revision: 1, Bundle: b.String()}
	s.apply(t, spec)
	r := s.start(t, []reconcile.Release{{Name: "many", Kind: reconcile.KindManifests, Revision: 1, Manifests: &spec}})

	st := r.Stats()
	if st.Releases != 1 || st.Objects != n || st.Watches != 1 || st.Drifted != 0 {
		t.Errorf("stats %+v: want 1 release, %d objects, 1 watch, none drifted", st, n)
	}
	if st.SyncedAt.IsZero() || st.FirstSync <= 0 {
		t.Errorf("stats %+v: want the time of the first full sync", st)
	}
	r.reports.wait(t, "the in-sync report", inSync("many"))
}

func TestObjectsOfALowerRevisionAreCorrected(t *testing.T) {
	s := newSetup(t)
	rel := s.webRelease(t, "web", "")
	spec2 := *rel.Manifests
	spec2.Revision, spec2.Bundle = 2, strings.Replace(webBundle, "nginx:1.27", "nginx:1.28", 1)
	rel.Revision, rel.Manifests = 2, &spec2

	r := s.start(t, []reconcile.Release{rel})

	d := r.reports.wait(t, "the correction report", corrected("web", "Deployment", "web"))
	if got := object(t, d, "Deployment", "web").Fields; !slices.Contains(got, imagePath) {
		t.Errorf("drifted fields %v, want %s among them", got, imagePath)
	}
	dep := s.deployment(t, "web")
	if dep.Spec.Template.Spec.Containers[0].Image != "nginx:1.28" || dep.Labels[manifests.LabelRevision] != "2" {
		t.Errorf("image %s at revision %s, want nginx:1.28 at revision 2", dep.Spec.Template.Spec.Containers[0].Image, dep.Labels[manifests.LabelRevision])
	}
	if len(r.refresh.all()) > 0 {
		t.Error("NeedRefresh called for objects of a lower revision")
	}
}

func TestAWriterFightingTheReleaseIsReportedNotFoughtForever(t *testing.T) {
	s := newSetup(t)
	rel := s.webRelease(t, "web", "")
	r := s.start(t, []reconcile.Release{rel})
	r.reports.wait(t, "the in-sync report", inSync("web"))

	for i := range 5 {
		s.edit(t, "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "nginx:evil" })
		waitFor(t, "correction "+fmt.Sprint(i+1), func() bool { return r.Stats().Corrections == int64(i+1) })
		waitFor(t, "the image to be restored", func() bool { return s.image(t, "web") == "nginx:1.27" })
	}
	s.edit(t, "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "nginx:evil" })

	d := r.reports.wait(t, "a drift report naming the fight", func(d reconcile.Drift) bool {
		return d.Release == "web" && !d.Corrected && strings.Contains(d.Error, "another writer keeps changing it")
	})
	if got := object(t, d, "Deployment", "web").Fields; !slices.Equal(got, []string{imagePath}) {
		t.Errorf("drifted fields %v, want [%s]", got, imagePath)
	}
	if got := s.image(t, "web"); got != "nginx:evil" || r.Stats().Corrections != 5 {
		t.Errorf("image %s after %d corrections: want the sixth correction paused", got, r.Stats().Corrections)
	}
}

func TestCorrectionsWaitForTheReleaseLock(t *testing.T) {
	s := newSetup(t)
	rel := s.webRelease(t, "web", "")
	locks := &countingLocker{}
	r := s.start(t, []reconcile.Release{rel}, func(o *reconcile.Options) { o.Lock = locks })
	r.reports.wait(t, "the in-sync report", inSync("web"))

	// A task of the release runs.
	unlock, err := locks.Locker.Lock(t.Context(), []string{reconcile.LockKey("web")})
	if err != nil {
		t.Fatal(err)
	}
	s.edit(t, "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "nginx:evil" })
	waitFor(t, "the reconciler to wait for the lock", func() bool { return locks.calls.Load() > 0 })
	if got := s.image(t, "web"); got != "nginx:evil" {
		t.Fatalf("image %s: corrected while a task held the release", got)
	}
	unlock()
	waitFor(t, "the image to be restored once the task is done", func() bool { return s.image(t, "web") == "nginx:1.27" })
}

// countingLocker counts the reconciler's Lock calls.
type countingLocker struct {
	keylock.Locker
	calls atomic.Int64
}

func (c *countingLocker) Lock(ctx context.Context, keys []string) (func(), error) {
	c.calls.Add(1)
	return c.Locker.Lock(ctx, keys)
}

func TestAReleaseForgottenByItsDeleteTaskIsNotRecreated(t *testing.T) {
	s := newSetup(t)
	rel := s.webRelease(t, "web", "")
	locks := &countingLocker{}
	r := s.start(t, []reconcile.Release{rel}, func(o *reconcile.Options) { o.Lock = locks })
	r.reports.wait(t, "the in-sync report", inSync("web"))
	checks := r.Stats().Checks

	// A delete task holds the release's lock, forgets the release and
	// deletes its objects.
	unlock, err := locks.Locker.Lock(t.Context(), []string{reconcile.LockKey("web")})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Client.AppsV1().Deployments(s.target).Delete(t.Context(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reconciler to wait for the lock", func() bool { return locks.calls.Load() > 0 })
	r.Forget("web")
	unlock()

	waitFor(t, "the waiting check to end", func() bool { return r.Stats().Checks > checks })
	if _, err := env.Client.AppsV1().Deployments(s.target).Get(t.Context(), "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the Deployment of a forgotten release was re-created (err %v)", err)
	}
}
