package helm_test

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outposthq/outpost/internal/executor/helm"
)

// kubelet plays the part of the missing kubelet and controllers in ns
// until the test ends: it reports every Deployment ready unless its image
// is tagged "broken" and, when jobs is set, every Job complete.
func kubelet(t *testing.T, ns string, jobs bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			readyDeployments(ctx, ns)
			readyStatefulSets(ctx, ns)
			readyDaemonSets(ctx, ns)
			if jobs {
				completeJobs(ctx, ns)
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
}

func readyDeployments(ctx context.Context, ns string) {
	list, err := env.Client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for i := range list.Items {
		d := &list.Items[i]
		n := int32(1)
		if d.Spec.Replicas != nil {
			n = *d.Spec.Replicas
		}
		if d.Status.ObservedGeneration == d.Generation && d.Status.ReadyReplicas == n {
			continue
		}
		if strings.HasSuffix(d.Spec.Template.Spec.Containers[0].Image, ":broken") {
			continue
		}
		now := metav1.Now()
		d.Status = appsv1.DeploymentStatus{
			ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
			Conditions: []appsv1.DeploymentCondition{
				{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", LastUpdateTime: now, LastTransitionTime: now},
				{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable", LastUpdateTime: now, LastTransitionTime: now},
			},
		}
		_, _ = env.Client.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	}
}

func readyStatefulSets(ctx context.Context, ns string) {
	list, err := env.Client.AppsV1().StatefulSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for i := range list.Items {
		s := &list.Items[i]
		if s.Status.ObservedGeneration == s.Generation {
			continue
		}
		n := int32(1)
		if s.Spec.Replicas != nil {
			n = *s.Spec.Replicas
		}
		s.Status = appsv1.StatefulSetStatus{ObservedGeneration: s.Generation, Replicas: n, ReadyReplicas: n, CurrentReplicas: n, UpdatedReplicas: n, AvailableReplicas: n,
			CurrentRevision: "r1", UpdateRevision: "r1"}
		_, _ = env.Client.AppsV1().StatefulSets(ns).UpdateStatus(ctx, s, metav1.UpdateOptions{})
	}
}

func readyDaemonSets(ctx context.Context, ns string) {
	list, err := env.Client.AppsV1().DaemonSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for i := range list.Items {
		d := &list.Items[i]
		if d.Status.ObservedGeneration == d.Generation {
			continue
		}
		d.Status = appsv1.DaemonSetStatus{ObservedGeneration: d.Generation, DesiredNumberScheduled: 2, CurrentNumberScheduled: 2, NumberReady: 2, UpdatedNumberScheduled: 2, NumberAvailable: 2}
		_, _ = env.Client.AppsV1().DaemonSets(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	}
}

func completeJobs(ctx context.Context, ns string) {
	list, err := env.Client.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for i := range list.Items {
		j := &list.Items[i]
		if j.Status.CompletionTime != nil {
			continue
		}
		start := metav1.NewTime(time.Now().Add(-time.Second))
		now := metav1.Now()
		j.Status = batchv1.JobStatus{
			StartTime: &start, CompletionTime: &now, Succeeded: 1,
			Conditions: []batchv1.JobCondition{
				{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastProbeTime: now, LastTransitionTime: now},
				{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastProbeTime: now, LastTransitionTime: now},
			},
		}
		_, _ = env.Client.BatchV1().Jobs(ns).UpdateStatus(ctx, j, metav1.UpdateOptions{})
	}
}

func TestWait(t *testing.T) {
	chart := packChart(t, "shop", nil)

	t.Run("a release whose Deployment becomes ready succeeds", func(t *testing.T) {
		s := admin(t)
		ex := s.executor(t)
		kubelet(t, s.target, false)
		spec := shop(s.target, "ready", chart, noWidget)
		spec.Wait, spec.TimeoutSeconds = true, 60
		if res := mustRun(t, ex, "wait-1", spec); res.Status != "deployed" {
			t.Fatalf("result %+v", res)
		}
	})

	t.Run("a release whose Deployment never becomes ready fails in the wait phase", func(t *testing.T) {
		s := admin(t)
		ex := s.executor(t)
		spec := shop(s.target, "stuck", chart, noWidget)
		spec.Wait, spec.TimeoutSeconds = true, 3
		_, err := run(t, ex, "wait-2", spec)
		wantPhase(t, err, helm.PhaseWait, true, nil, "")
	})

	t.Run("an atomic upgrade that times out is rolled back and says so", func(t *testing.T) {
		s := admin(t)
		ex := s.executor(t)
		kubelet(t, s.target, false)
		mustRun(t, ex, "atomic-1", shop(s.target, "atom", chart, noWidget))
		spec := shop(s.target, "atom", chart, map[string]any{"greeting": "new", "image": "registry.example.com/shop:broken", "widget": map[string]any{"enabled": false}})
		spec.Atomic, spec.TimeoutSeconds = true, 3
		_, err := run(t, ex, "atomic-2", spec)
		wantPhase(t, err, helm.PhaseWait, true, nil, "atomic: rolled back; revision 3 is deployed")
		cm, gerr := env.Client.CoreV1().ConfigMaps(s.target).Get(t.Context(), "atom-config", getOpts)
		if gerr != nil || cm.Data["greeting"] != "hello" {
			t.Errorf("ConfigMap %v %v, want revision 1's greeting back", cm.Data, gerr)
		}
	})

	t.Run("an atomic first install that times out is uninstalled", func(t *testing.T) {
		s := admin(t)
		ex := s.executor(t)
		spec := shop(s.target, "gone", chart, noWidget)
		spec.Atomic, spec.TimeoutSeconds = true, 3
		_, err := run(t, ex, "atomic-3", spec)
		wantPhase(t, err, helm.PhaseWait, true, nil, "the failed install was uninstalled")
		if _, gerr := env.Client.CoreV1().ConfigMaps(s.target).Get(t.Context(), "gone-config", getOpts); !apierrors.IsNotFound(gerr) {
			t.Errorf("ConfigMap after the atomic install failed: %v, want not found", gerr)
		}
	})
}

func TestHooks(t *testing.T) {
	s := admin(t)
	ex := s.executor(t)
	kubelet(t, s.target, true)
	chart := packChart(t, "shop", nil)
	vals := map[string]any{"hooks": map[string]any{"enabled": true}, "widget": map[string]any{"enabled": false}}

	for i, id := range []string{"hook-install", "hook-upgrade"} {
		res := mustRun(t, ex, id, shop(s.target, "hooked", chart, vals))
		if res.Revision != i+1 || res.Status != "deployed" {
			t.Fatalf("%s: result %+v", id, res)
		}
		// hook-succeeded: the completed Job is deleted.
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := env.Client.BatchV1().Jobs(s.target).Get(t.Context(), "hooked-migrate", getOpts)
			if apierrors.IsNotFound(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the succeeded hook Job is still there (%v)", id, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	hist := mustRun(t, ex, "hook-history", shopHistory(s.target, "hooked"))
	if len(hist.History) != 2 || !strings.Contains(hist.History[0].Description, "Upgrade complete") {
		t.Errorf("history %+v", hist.History)
	}
}

// workloads adds a StatefulSet, a DaemonSet and a Job to the shop chart.
var workloads = map[string]string{
	"templates/statefulset.yaml": `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ .Release.Name }}-db
spec:
  serviceName: {{ .Release.Name }}-db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: registry.example.com/db:1}]}
`,
	"templates/daemonset.yaml": `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ .Release.Name }}-agent
spec:
  selector: {matchLabels: {app: node-agent}}
  template:
    metadata: {labels: {app: node-agent}}
    spec: {containers: [{name: a, image: registry.example.com/node-agent:1}]}
`,
	"templates/job.yaml": `apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-seed
spec:
  template:
    spec: {restartPolicy: Never, containers: [{name: seed, image: registry.example.com/seed:1}]}
`,
}

func TestWaitCoversEveryWorkloadKind(t *testing.T) {
	chart := packChart(t, "shop", workloads)

	t.Run("StatefulSets, DaemonSets and Jobs that become ready let the task succeed", func(t *testing.T) {
		s := admin(t)
		ex := s.executor(t)
		kubelet(t, s.target, true)
		spec := shop(s.target, "kinds", chart, noWidget)
		spec.Wait, spec.TimeoutSeconds = true, 60
		if res := mustRun(t, ex, "kinds-1", spec); res.Status != "deployed" {
			t.Fatalf("result %+v", res)
		}
	})

	t.Run("a Job that never completes fails the wait", func(t *testing.T) {
		s := admin(t)
		ex := s.executor(t)
		kubelet(t, s.target, false)
		spec := shop(s.target, "kinds", chart, noWidget)
		spec.Wait, spec.TimeoutSeconds = true, 3
		_, err := run(t, ex, "kinds-2", spec)
		wantPhase(t, err, helm.PhaseWait, true, nil, "kinds-seed")
	})
}
