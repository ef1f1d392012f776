package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
)

const webDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: ghcr.io/example/web:1.0
`

const webConfig = `apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  greeting: hello
`

const extraConfig = `apiVersion: v1
kind: ConfigMap
metadata:
  name: extra
data:
  a: "1"
`

// writeRelease writes a manifests release file for namespace ns holding
// docs, with the given mode, and returns its path.
func writeRelease(t *testing.T, name, ns, mode string, docs ...string) string {
	t.Helper()
	dir := t.TempDir()
	var files []string
	for i, d := range docs {
		f := fmt.Sprintf("doc%d.yaml", i)
		if err := os.WriteFile(filepath.Join(dir, f), []byte(d), 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	doc := fmt.Sprintf(`apiVersion: outpost.dev/v1
kind: Release
metadata:
  name: %s
  environment: prod
spec:
  mode: %s
  ignore:
  - group: apps
    kind: Deployment
    paths: ["/spec/replicas"]
  manifests:
    namespace: %s
    files: [%s]
`, name, mode, ns, strings.Join(files, ", "))
	path := filepath.Join(dir, "release.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// eventually polls cond every 50 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v", what, timeout)
}

func (r *kubeRig) release(t *testing.T, name string) *outpostv1.Release {
	t.Helper()
	resp, err := r.h.operator.GetRelease(t.Context(), connect.NewRequest(&outpostv1.GetReleaseRequest{Environment: "prod", Name: name}))
	if err != nil {
		t.Fatalf("get release %s: %v", name, err)
	}
	return resp.Msg.GetRelease()
}

func (r *kubeRig) deployment(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	d, err := r.env.Client.AppsV1().Deployments(r.target).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get deployment %s: %v", name, err)
	}
	return d
}

// editDeployment changes a Deployment as `kubectl edit` would: an update
// by another field manager.
func (r *kubeRig) editDeployment(t *testing.T, name string, change func(*appsv1.Deployment)) {
	t.Helper()
	for range 10 {
		d := r.deployment(t, name)
		change(d)
		_, err := r.env.Client.AppsV1().Deployments(r.target).Update(t.Context(), d, metav1.UpdateOptions{FieldManager: "kubectl-edit"})
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			t.Fatalf("edit deployment %s: %v", name, err)
		}
	}
	t.Fatalf("edit deployment %s: conflicts kept coming", name)
}

func image(d *appsv1.Deployment) string { return d.Spec.Template.Spec.Containers[0].Image }

func (r *kubeRig) configMap(t *testing.T, name string) (*corev1.ConfigMap, bool) {
	t.Helper()
	cm, err := r.env.Client.CoreV1().ConfigMaps(r.target).Get(t.Context(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return cm, true
}

// TestReleasesKeepTheClusterInSync drives a release through the CLI against
// a hub and a least-privilege agent process on a real kube-apiserver.
func TestReleasesKeepTheClusterInSync(t *testing.T) {
	r := startKubeRig(t, "")
	top := t // processes started in subtests must outlive them
	rel1 := writeRelease(t, "web", r.target, "correct", webDeployment, webConfig)

	t.Run("apply makes revision 1 and the agent applies it", func(t *testing.T) {
		out := r.cli(t, "", "release", "apply", "-f", rel1, "--wait", "--timeout", "60s")
		if !strings.Contains(out, "revision 1") {
			t.Fatalf("apply output: %s", out)
		}
		rel := r.release(t, "web")
		if rel.GetAppliedRevision() != 1 || rel.GetSync() != outpostv1.ReleaseSync_RELEASE_SYNC_IN_SYNC {
			t.Fatalf("release: applied %d sync %v", rel.GetAppliedRevision(), rel.GetSync())
		}
		if out := r.cli(t, "", "release", "apply", "-f", rel1); !strings.Contains(out, "unchanged") {
			t.Fatalf("applying the same file again: %s", out)
		}
	})

	t.Run("a manual edit of a managed field is corrected and reported", func(t *testing.T) {
		r.waitSynced(t, r.agent, 1)
		r.editDeployment(t, "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "evil:latest" })
		eventually(t, 15*time.Second, "image restored", func() bool { return image(r.deployment(t, "web")) == "ghcr.io/example/web:1.0" })
		eventually(t, 15*time.Second, "correction reported", func() bool {
			rel := r.release(t, "web")
			return rel.GetDriftCorrected() && len(rel.GetDrift()) == 1 && strings.Contains(strings.Join(rel.GetDrift()[0].GetFields(), ","), "image")
		})
		if out := r.cli(t, "", "release", "get", "web"); !strings.Contains(out, "image") {
			t.Fatalf("release get does not show the corrected field:\n%s", out)
		}
		events, err := r.env.Client.CoreV1().Events(r.target).List(t.Context(), metav1.ListOptions{FieldSelector: "involvedObject.name=web"})
		if err != nil {
			t.Fatal(err)
		}
		reasons := map[string]bool{}
		for _, e := range events.Items {
			reasons[e.Reason] = true
		}
		if !reasons["DriftCorrected"] {
			t.Fatalf("no DriftCorrected event on the Deployment; reasons %v", reasons)
		}
	})

	t.Run("fields other managers own, ignored fields and status never count as drift", func(t *testing.T) {
		before := r.h.auditCount(t, "release.drift_corrected") + r.h.auditCount(t, "release.drift_detected")
		r.editDeployment(t, "web", func(d *appsv1.Deployment) {
			if d.Annotations == nil {
				d.Annotations = map[string]string{}
			}
			d.Annotations["team"] = "payments" // a field Outpost never set
			d.Spec.Replicas = ptrTo(int32(5))  // ignored by the release
		})
		d := r.deployment(t, "web")
		d.Status.Replicas, d.Status.ObservedGeneration = 5, d.Generation
		if _, err := r.env.Client.AppsV1().Deployments(r.target).UpdateStatus(t.Context(), d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second) // what a false drift would take to show
		d = r.deployment(t, "web")
		if d.Annotations["team"] != "payments" || *d.Spec.Replicas != 5 {
			t.Fatalf("the reconciler reverted fields it does not own: annotations %v replicas %d", d.Annotations, *d.Spec.Replicas)
		}
		after := r.h.auditCount(t, "release.drift_corrected") + r.h.auditCount(t, "release.drift_detected")
		if after != before {
			t.Fatalf("drift reports went from %d to %d for changes that are not drift", before, after)
		}
	})

	t.Run("a deleted Deployment is re-created", func(t *testing.T) {
		old := r.deployment(t, "web").UID
		if err := r.env.Client.AppsV1().Deployments(r.target).Delete(t.Context(), "web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 15*time.Second, "Deployment re-created", func() bool {
			d, err := r.env.Client.AppsV1().Deployments(r.target).Get(t.Context(), "web", metav1.GetOptions{})
			return err == nil && d.UID != old && image(d) == "ghcr.io/example/web:1.0"
		})
	})

	rel2 := writeRelease(t, "web", r.target, "detect", webDeployment, webConfig, extraConfig)
	t.Run("in detect mode drift is reported and left alone", func(t *testing.T) {
		r.cli(t, "", "release", "apply", "-f", rel2, "--wait", "--timeout", "60s")
		if _, ok := r.configMap(t, "extra"); !ok {
			t.Fatal("revision 2's ConfigMap was not created")
		}
		// The reconciler must have revision 2 before the edit, or it
		// would correct by revision 1's mode.
		r.waitSynced(t, r.agent, 2)
		cm, _ := r.configMap(t, "web-config")
		cm.Data["greeting"] = "tampered"
		if _, err := r.env.Client.CoreV1().ConfigMaps(r.target).Update(t.Context(), cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 15*time.Second, "drift reported", func() bool {
			return r.release(t, "web").GetSync() == outpostv1.ReleaseSync_RELEASE_SYNC_DRIFTED
		})
		if cm, _ := r.configMap(t, "web-config"); cm.Data["greeting"] != "tampered" {
			t.Fatalf("detect mode changed the ConfigMap: %v", cm.Data)
		}
		if out := r.cli(t, "", "release", "get", "web"); !strings.Contains(out, "drifted") || !strings.Contains(out, "greeting") {
			t.Fatalf("release get does not show the drift:\n%s", out)
		}
	})

	t.Run("rollback to revision 1 restores its objects and prunes the rest", func(t *testing.T) {
		r.cli(t, "", "release", "rollback", "web", "--env", "prod", "--to", "1", "--wait", "--timeout", "60s")
		if _, ok := r.configMap(t, "extra"); ok {
			t.Fatal("the ConfigMap only revision 2 had is still there")
		}
		if cm, _ := r.configMap(t, "web-config"); cm.Data["greeting"] != "hello" {
			t.Fatalf("web-config after rollback: %v", cm.Data)
		}
		rel := r.release(t, "web")
		if rel.GetAppliedRevision() != 3 || rel.GetMode() != outpostv1.ReleaseMode_RELEASE_MODE_CORRECT {
			t.Fatalf("after rollback: applied %d mode %v", rel.GetAppliedRevision(), rel.GetMode())
		}
	})

	t.Run("with the hub down drift is still corrected, and reported once it is back", func(t *testing.T) {
		r.waitSynced(t, r.agent, 3)
		before := r.h.auditCount(t, "release.drift_corrected")
		r.h.p.kill()
		r.editDeployment(t, "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "offline-edit:1" })
		eventually(t, 15*time.Second, "image restored while the hub is down", func() bool {
			return image(r.deployment(t, "web")) == "ghcr.io/example/web:1.0"
		})
		// An agent restarted while the hub is away reconciles the desired
		// state it kept in its namespace.
		r.agent.kill()
		r.agent = r.startAgentIn(top, "")
		eventually(t, 30*time.Second, "restarted agent loaded the kept state", func() bool {
			return strings.Contains(r.agent.out.String(), "reconciling the desired state kept")
		})
		r.waitSynced(t, r.agent, 3)
		r.editDeployment(t, "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "offline-edit:2" })
		eventually(t, 15*time.Second, "image restored by the restarted agent while the hub is down", func() bool {
			return image(r.deployment(t, "web")) == "ghcr.io/example/web:1.0"
		})
		r.h.start(top)
		eventually(t, 90*time.Second, "the correction reaches the hub", func() bool {
			return r.h.auditCount(t, "release.drift_corrected") > before
		})
	})

	t.Run("deleting the release removes its objects", func(t *testing.T) {
		r.cli(t, "", "release", "delete", "web", "--env", "prod", "--yes", "--wait", "--timeout", "60s")
		eventually(t, 15*time.Second, "objects removed", func() bool {
			_, err := r.env.Client.AppsV1().Deployments(r.target).Get(t.Context(), "web", metav1.GetOptions{})
			_, cmThere := r.configMap(t, "web-config")
			return apierrors.IsNotFound(err) && !cmThere
		})
		_, err := r.h.operator.GetRelease(t.Context(), connect.NewRequest(&outpostv1.GetReleaseRequest{Environment: "prod", Name: "web"}))
		if connect.CodeOf(err) != connect.CodeNotFound {
			t.Fatalf("release still on the hub: %v", err)
		}
	})
	r.h.verifyAudit(t)
}

// TestReconcilerFailover runs two agent replicas: one holds the leader
// Lease and reconciles; killing it hands reconciliation to the other
// within the lease time.
func TestReconcilerFailover(t *testing.T) {
	r := startKubeRig(t, "")
	// The first agent enrolls, keeping the identity both replicas share.
	eventually(t, 30*time.Second, "first agent started", func() bool { return strings.Contains(r.agent.out.String(), `msg="agent started"`) })
	r.agent.kill()
	start := func(id string) *proc {
		return startProc(t, "outpost-agent", "--hub", r.h.url(), "--ca-file", r.h.caFile, "--kubeconfig", r.kubeconfig,
			"--namespace", r.agentNS, "--replica-id", id, "--leader-lease-duration", "3s", "--log-level", "debug")
	}
	replicas := map[string]*proc{"replica-a": start("replica-a"), "replica-b": start("replica-b")}
	rel := writeRelease(t, "web", r.target, "correct", webDeployment)
	r.cli(t, "", "release", "apply", "-f", rel, "--wait", "--timeout", "60s")

	holder := func() string {
		l, err := r.env.Client.CoordinationV1().Leases(r.agentNS).Get(t.Context(), "outpost-agent-reconciler", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	var leader string
	eventually(t, 30*time.Second, "a leader", func() bool { leader = holder(); return replicas[leader] != nil })
	r.waitSynced(t, replicas[leader], 1)

	replicas[leader].kill()
	killed := time.Now()
	r.editDeployment(t, "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "evil:latest" })
	eventually(t, 30*time.Second, "the other replica corrects", func() bool {
		return image(r.deployment(t, "web")) == "ghcr.io/example/web:1.0"
	})
	// Lease time plus a full sync of one release on a shared machine.
	if d := time.Since(killed); d > 3*time.Second+10*time.Second {
		t.Fatalf("hand-over and correction took %v", d)
	}
	if now := holder(); now == leader || replicas[now] == nil {
		t.Fatalf("lease holder after the kill: %q (was %q)", now, leader)
	}
}

func ptrTo[T any](v T) *T { return &v }

// waitSynced waits until agent p's reconciler has synced revision rev of
// release web, as its log says.
func (r *kubeRig) waitSynced(t *testing.T, p *proc, rev int) {
	t.Helper()
	line := fmt.Sprintf(`msg="release synced" release=web revision=%d `, rev)
	eventually(t, 30*time.Second, "revision synced by the reconciler", func() bool { return strings.Contains(p.out.String(), line) })
}

// auditCount counts the audit events of an action.
func (h *hubProc) auditCount(t *testing.T, action string) int {
	t.Helper()
	n := 0
	for _, c := range h.auditActions(t, action) {
		n += c
	}
	return n
}
