package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	helmexec "github.com/outposthq/outpost/internal/executor/helm"
	"github.com/outposthq/outpost/internal/hubtest"
)

// shopChart is the helm executor's test chart: a Deployment, a Service
// and a ConfigMap, a subchart with its own ConfigMap, CRDs, hooks and a
// values schema. The agent here has no cluster-wide rights, so the tests
// skip the CRDs and the Widget that needs them.
var shopChart = filepath.Join("..", "..", "internal", "executor", "helm", "testdata", "charts", "shop")

// withoutCRDs are the settings every deploying helm task here adds for an
// agent without cluster-wide rights.
var withoutCRDs = []string{"--skip-crds", "--set", "widget.enabled=false"}

// helm runs a helm task for release shop through the CLI, waits for it and
// returns the CLI's output and the task's result.
func (r *kubeRig) helm(t *testing.T, id string, args ...string) (string, helmexec.Result) {
	t.Helper()
	out := r.cli(t, "", append([]string{"task", "run", "--env", "prod", "--id", id, "--release", "shop", "--namespace", r.target, "--wait"}, args...)...)
	return out, r.helmResult(t, id)
}

func (r *kubeRig) helmResult(t *testing.T, id string) helmexec.Result {
	t.Helper()
	return succeededResult[helmexec.Result](t, r.h, id)
}

// shopConfig returns the data of the chart's ConfigMap.
func (r *kubeRig) shopConfig(t *testing.T) map[string]string {
	t.Helper()
	cm, err := r.env.Client.CoreV1().ConfigMaps(r.target).Get(t.Context(), "shop-config", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("configmap shop-config: %v", err)
	}
	return cm.Data
}

// releaseRecords returns the status of each of release shop's Helm
// records by revision, from the labels Helm's Secret driver sets.
func (r *kubeRig) releaseRecords(t *testing.T) map[string]string {
	t.Helper()
	list, err := r.env.Client.CoreV1().Secrets(r.target).List(t.Context(), metav1.ListOptions{LabelSelector: "owner=helm,name=shop"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range list.Items {
		out[s.Labels["version"]] = s.Labels["status"]
	}
	return out
}

func objectOutcomes(res helmexec.Result) map[string]string {
	m := map[string]string{}
	for _, o := range res.Objects {
		m[o.Kind+"/"+o.Name] = o.Outcome
	}
	return m
}

func writeValues(t *testing.T, doc string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHelmEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver, a hub and an agent")
	}
	r := startKubeRig(t, "")
	c := r.env.Client

	out, installed := r.helm(t, "shop-install", append([]string{"--chart", shopChart}, withoutCRDs...)...)
	t.Run("install deploys the chart and its subchart as revision 1", func(t *testing.T) {
		if installed.Revision != 1 || installed.Status != "deployed" || installed.Chart != "shop-1.2.0" {
			t.Fatalf("result %+v, want revision 1 of shop-1.2.0 deployed", installed)
		}
		want := map[string]string{"ConfigMap/shop-config": "created", "ConfigMap/shop-cache": "created", "Service/shop-web": "created", "Deployment/shop-web": "created"}
		if got := objectOutcomes(installed); !maps.Equal(got, want) {
			t.Fatalf("objects %v, want %v", got, want)
		}
		if data := r.shopConfig(t); data["greeting"] != "hello" || data["revision"] != "1" {
			t.Fatalf("configmap data %v, want the chart's greeting at revision 1", data)
		}
		d, err := c.AppsV1().Deployments(r.target).Get(t.Context(), "shop-web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if d.Labels["outpost.dev/release"] != "shop" || d.Annotations["meta.helm.sh/release-name"] != "shop" {
			t.Fatalf("deployment labels %v, annotations %v", d.Labels, d.Annotations)
		}
	})
	t.Run("the CLI shows the release it installed", func(t *testing.T) {
		for _, want := range []string{"RESULT:", "REVISION:", "deployed", "shop-1.2.0 (app version 2.0)", "OBJECTS:", "Deployment.apps", "NOTES:", "shop 1.2.0 is deployed in " + r.target} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("an upgrade with new values changes the ConfigMap", func(t *testing.T) {
		_, res := r.helm(t, "shop-upgrade", append([]string{"--helm-action", "upgrade", "--chart", shopChart, "-f", writeValues(t, "greeting: bonjour\n")}, withoutCRDs...)...)
		if res.Revision != 2 || res.Status != "deployed" {
			t.Fatalf("result %+v, want revision 2 deployed", res)
		}
		if data := r.shopConfig(t); data["greeting"] != "bonjour" || data["revision"] != "2" {
			t.Fatalf("configmap data %v, want the new greeting at revision 2", data)
		}
	})
	t.Run("a second upgrade with --set makes revision 3", func(t *testing.T) {
		_, res := r.helm(t, "shop-upgrade-2", append([]string{"--helm-action", "upgrade", "--chart", shopChart, "--set", "greeting=hallo"}, withoutCRDs...)...)
		if res.Revision != 3 || r.shopConfig(t)["greeting"] != "hallo" {
			t.Fatalf("result %+v, greeting %q; want revision 3 saying hallo", res, r.shopConfig(t)["greeting"])
		}
	})
	t.Run("a rollback to revision 1 restores its values as revision 4", func(t *testing.T) {
		_, res := r.helm(t, "shop-rollback", "--helm-action", "rollback", "--rollback-to", "1")
		if res.Revision != 4 || res.Status != "deployed" {
			t.Fatalf("result %+v, want revision 4 deployed", res)
		}
		if data := r.shopConfig(t); data["greeting"] != "hello" || data["revision"] != "1" {
			t.Fatalf("configmap data %v, want revision 1's", data)
		}
	})
	t.Run("history lists the four revisions as helm does", func(t *testing.T) {
		out, res := r.helm(t, "shop-history", "--helm-action", "history")
		var got []string
		for _, h := range res.History {
			got = append(got, fmt.Sprintf("%d %s", h.Revision, h.Status))
		}
		want := []string{"4 deployed", "3 superseded", "2 superseded", "1 superseded"}
		if !slices.Equal(got, want) {
			t.Fatalf("history %v, want %v", got, want)
		}
		if !strings.HasPrefix(res.History[0].Description, "Rollback to 1") {
			t.Errorf("revision 4 description %q, want Rollback to 1", res.History[0].Description)
		}
		for _, want := range []string{"HISTORY:", "Rollback to 1", "superseded"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("status says every object of the deployed revision is present", func(t *testing.T) {
		_, res := r.helm(t, "shop-status", "--helm-action", "status")
		if res.Revision != 4 || res.Status != "deployed" || len(res.Objects) != 4 {
			t.Fatalf("result %+v, want revision 4 deployed with 4 objects", res)
		}
		for _, o := range res.Objects {
			if o.Outcome != helmexec.OutcomePresent {
				t.Errorf("%s %s: %s, want present", o.Kind, o.Name, o.Outcome)
			}
		}
	})
	t.Run("uninstall deletes the objects and the release records", func(t *testing.T) {
		_, res := r.helm(t, "shop-uninstall", "--helm-action", "uninstall")
		if res.Status != "uninstalled" {
			t.Fatalf("result %+v, want uninstalled", res)
		}
		for _, name := range []string{"shop-config", "shop-cache"} {
			if _, err := c.CoreV1().ConfigMaps(r.target).Get(t.Context(), name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("configmap %s: %v, want not found", name, err)
			}
		}
		if _, err := c.AppsV1().Deployments(r.target).Get(t.Context(), "shop-web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("deployment: %v, want not found", err)
		}
		if _, err := c.CoreV1().Services(r.target).Get(t.Context(), "shop-web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("service: %v, want not found", err)
		}
		if recs := r.releaseRecords(t); len(recs) != 0 {
			t.Errorf("release records left: %v", recs)
		}
	})
	t.Run("every task of the release carried its conflict key", func(t *testing.T) {
		for _, id := range []string{"shop-install", "shop-upgrade", "shop-rollback", "shop-uninstall"} {
			if keys := r.h.task(t, id).GetConflictKeys(); !slices.Equal(keys, []string{"helm/" + r.target + "/shop"}) {
				t.Errorf("%s: conflict keys %v", id, keys)
			}
		}
	})
}

// markReady keeps the Deployment name ready, as a controller manager
// would once its pods run (the test cluster has none), until ctx ends.
// Errors are logged with log.
func markReady(ctx context.Context, r *kubeRig, name string, log func(format string, args ...any)) {
	deployments := r.env.Client.AppsV1().Deployments(r.target)
	for {
		d, err := deployments.Get(ctx, name, metav1.GetOptions{})
		if err == nil && !isReady(d) {
			replicas := int32(1)
			if d.Spec.Replicas != nil {
				replicas = *d.Spec.Replicas
			}
			now := metav1.Now()
			d.Status = appsv1.DeploymentStatus{
				ObservedGeneration: d.Generation, Replicas: replicas, UpdatedReplicas: replicas, ReadyReplicas: replicas, AvailableReplicas: replicas,
				Conditions: []appsv1.DeploymentCondition{
					{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", LastUpdateTime: now, LastTransitionTime: now},
					{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable", LastUpdateTime: now, LastTransitionTime: now},
				},
			}
			if _, err := deployments.UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil && !apierrors.IsConflict(err) {
				log("mark %s ready: %v", name, err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func isReady(d *appsv1.Deployment) bool {
	return d.Status.ObservedGeneration == d.Generation && d.Status.ReadyReplicas > 0 && len(d.Status.Conditions) == 2
}

// TestHelmAgentKilledDuringUpgrade kills the agent while an upgrade waits
// for a Deployment that is not ready, which leaves Helm's record of the
// revision pending-upgrade. The restarted agent's retry marks that record
// failed, upgrades again and, once the Deployment is ready, deploys: no
// record stays pending.
func TestHelmAgentKilledDuringUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver, a hub and agents, and kills one")
	}
	r := startKubeRig(t, "")
	r.helm(t, "shop-install", append([]string{"--chart", shopChart}, withoutCRDs...)...)

	r.cli(t, "", append([]string{"task", "run", "--env", "prod", "--id", "shop-upgrade", "--release", "shop", "--namespace", r.target,
		"--helm-action", "upgrade", "--chart", shopChart, "--set", "greeting=interrupted", "--helm-wait", "--helm-timeout", "60s"}, withoutCRDs...)...)
	// The upgrade has applied its objects and waits for the Deployment,
	// which no controller will make ready, once revision 2 is pending and
	// the ConfigMap says so.
	deadline := time.Now().Add(60 * time.Second)
	for r.releaseRecords(t)["2"] != "pending-upgrade" || r.shopConfig(t)["greeting"] != "interrupted" {
		if time.Now().After(deadline) {
			t.Fatalf("the upgrade did not reach its wait within 60s: records %v, task %v", r.releaseRecords(t), r.h.task(t, "shop-upgrade"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	if task := r.h.task(t, "shop-upgrade"); hubtest.Terminal(task) {
		t.Fatalf("the upgrade finished before the kill: %v %s", task.GetState(), task.GetError())
	}
	r.agent.kill()
	if recs := r.releaseRecords(t); recs["2"] != "pending-upgrade" {
		t.Fatalf("records after the kill %v, want revision 2 pending-upgrade", recs)
	}

	ctx, cancel := context.WithCancel(t.Context())
	marked := make(chan struct{})
	go func() {
		defer close(marked)
		markReady(ctx, r, "shop-web", t.Logf)
	}()
	stopMarking := func() { cancel(); <-marked }
	defer stopMarking()
	r.agent = r.startAgent(t, "")
	got := r.h.waitTask(t, "shop-upgrade", 2*time.Minute, hubtest.Terminal)

	t.Run("the retried attempt completes the upgrade", func(t *testing.T) {
		if got.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED || got.GetAttempt() < 2 {
			t.Fatalf("task %v at attempt %d (%s), want succeeded on a later attempt", got.GetState(), got.GetAttempt(), got.GetError())
		}
		res := r.helmResult(t, "shop-upgrade")
		if res.Status != "deployed" || res.Revision != 3 || res.Unchanged {
			t.Fatalf("result %+v, want revision 3 deployed by this attempt", res)
		}
		if greeting := r.shopConfig(t)["greeting"]; greeting != "interrupted" {
			t.Fatalf("greeting %q, want the upgrade's", greeting)
		}
	})
	t.Run("no revision is left pending", func(t *testing.T) {
		recs := r.releaseRecords(t)
		want := map[string]string{"1": "superseded", "2": "failed", "3": "deployed"}
		if !maps.Equal(recs, want) {
			t.Fatalf("records %v, want %v", recs, want)
		}
		_, res := r.helm(t, "shop-history", "--helm-action", "history")
		if len(res.History) != 3 || res.History[0].Status != "deployed" || res.History[1].Status != "failed" ||
			!strings.Contains(res.History[1].Description, "interrupted") {
			t.Fatalf("history %+v, want 3 deployed and 2 failed as interrupted", res.History)
		}
		_, status := r.helm(t, "shop-status", "--helm-action", "status")
		if status.Status != "deployed" || status.Revision != 3 {
			t.Fatalf("status %+v, want revision 3 deployed", status)
		}
	})
}
