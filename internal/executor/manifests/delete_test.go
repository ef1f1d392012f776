package manifests_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/manifests"
	"github.com/outposthq/outpost/internal/kube/kubetest"
	"github.com/outposthq/outpost/internal/taskspec"
)

// release is a revision of release "web" with three ConfigMaps, a Service
// and a Deployment.
func release(ns string) taskspec.Manifests {
	return taskspec.Manifests{Release: "web", Namespace: ns, Bundle: join(
		configMap("a", "", map[string]string{"v": "1"}), configMap("b", "", nil), configMap("c", "", nil), service, deployment)}
}

func deleteSpec() taskspec.Manifests { return taskspec.Manifests{Release: "web", Delete: true} }

var allDeleted = map[string]string{
	"ConfigMap/a": "deleted", "ConfigMap/b": "deleted", "ConfigMap/c": "deleted", "Service/web": "deleted", "Deployment/web": "deleted",
}

// objectDelete reports whether req deletes an object of a release, not an
// inventory, and is no dry run.
func objectDelete(req *http.Request) bool {
	if req.Method != http.MethodDelete || strings.Contains(req.URL.Path, "/secrets/") {
		return false
	}
	// client-go sends DeleteOptions in the body.
	if req.GetBody == nil {
		return true
	}
	body, err := req.GetBody()
	if err != nil {
		return true
	}
	defer body.Close()
	b, _ := io.ReadAll(body)
	return !strings.Contains(string(b), `"dryRun"`)
}

func TestDeleteRelease(t *testing.T) {
	s := leastPrivilege(t)
	ex := s.executor(t)
	execute(t, ex, task(t, "a1", 1, release(s.target)))
	// Someone else takes ConfigMap b over.
	relabel(t, s.target, "b", "api")

	var mu sync.Mutex
	var order []string
	recording := s.executor(t, withHook(func(req *http.Request) error {
		if objectDelete(req) {
			mu.Lock()
			defer mu.Unlock()
			parts := strings.Split(req.URL.Path, "/")
			order = append(order, parts[len(parts)-2])
		}
		return nil
	}))
	res := execute(t, recording, task(t, "d1", 1, deleteSpec()))
	t.Run("a delete removes the release's objects and reports each", func(t *testing.T) {
		wantOutcomes(t, res, map[string]string{
			"ConfigMap/a": "deleted", "ConfigMap/c": "deleted", "Service/web": "deleted", "Deployment/web": "deleted",
			"ConfigMap/b": "skipped: no longer carries the labels of release web; left in place",
		})
		if res.Release != "web" || res.Revision != 1 || res.Counts != (manifests.Counts{Deleted: 4, Skipped: 1}) || res.DryRun != (manifests.DryRun{OK: true, Objects: 4}) {
			t.Fatalf("result %+v", res)
		}
		for _, name := range []string{"a", "c"} {
			if configMapExists(t, s.target, name) {
				t.Fatalf("ConfigMap %s still exists", name)
			}
		}
		if _, err := env.Client.AppsV1().Deployments(s.target).Get(t.Context(), "web", metav1.GetOptions{}); err == nil {
			t.Fatal("the Deployment still exists")
		}
	})
	t.Run("objects are deleted in reverse install order", func(t *testing.T) {
		want := "deployments services configmaps configmaps"
		if got := strings.Join(order, " "); got != want {
			t.Fatalf("deleted %s, want %s", got, want)
		}
	})
	t.Run("an object relabelled by someone else is left in place", func(t *testing.T) {
		cm, err := env.Client.CoreV1().ConfigMaps(s.target).Get(t.Context(), "b", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the relabelled ConfigMap is gone: %v", err)
		}
		if cm.Labels["outpost.dev/release"] != "api" {
			t.Fatalf("labels %v", cm.Labels)
		}
	})
	t.Run("the inventory is deleted", func(t *testing.T) {
		if inventoryExists(t, s, "web") {
			t.Fatal("the inventory Secret still exists")
		}
	})
	t.Run("a repeat of the delete succeeds and does nothing", func(t *testing.T) {
		for _, tk := range []executor.Task{task(t, "d1", 2, deleteSpec()), task(t, "d2", 1, deleteSpec())} {
			again := execute(t, ex, tk)
			if len(again.Objects) != 0 || again.Counts != (manifests.Counts{}) || again.Revision != 0 {
				t.Fatalf("task %s: result %+v, want nothing done", tk.ID, again)
			}
		}
		if !configMapExists(t, s.target, "b") {
			t.Fatal("a repeat deleted the relabelled ConfigMap")
		}
	})
	t.Run("a later release of the same name starts afresh", func(t *testing.T) {
		res := execute(t, ex, task(t, "a2", 1, taskspec.Manifests{Release: "web", Namespace: s.target, Bundle: configMap("a", "", nil)}))
		wantOutcomes(t, res, map[string]string{"ConfigMap/a": "created"})
		if res.Revision != 1 || res.Counts.Pruned != 0 {
			t.Fatalf("result %+v, want revision 1 pruning nothing", res)
		}
	})
}

func TestDeleteUnknownRelease(t *testing.T) {
	s := leastPrivilege(t)
	res := execute(t, s.executor(t), task(t, "d1", 1, taskspec.Manifests{Release: "never-applied", Delete: true}))
	t.Run("a delete of a release the agent does not know succeeds doing nothing", func(t *testing.T) {
		if res.Release != "never-applied" || len(res.Objects) != 0 || res.Counts != (manifests.Counts{}) {
			t.Fatalf("result %+v", res)
		}
		if inventoryExists(t, s, "never-applied") {
			t.Fatal("the delete created an inventory")
		}
	})
}

func TestDeleteKeepsNamespaceHoldingSkippedObject(t *testing.T) {
	s := admin(t)
	ns := fmt.Sprintf("rel-%d", userSeq.Add(1))
	spec := taskspec.Manifests{Release: "web", Bundle: join(
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: "+ns+"}\n",
		configMap("mine", ns, nil), configMap("theirs", ns, nil))}
	ex := s.executor(t)
	execute(t, ex, task(t, "a1", 1, spec))
	t.Cleanup(func() { _ = env.Client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	relabel(t, ns, "theirs", "api")
	res := execute(t, ex, task(t, "d1", 1, deleteSpec()))
	t.Run("a Namespace holding an object left in place is left in place too", func(t *testing.T) {
		wantOutcomes(t, res, map[string]string{
			"ConfigMap/mine":   "deleted",
			"ConfigMap/theirs": "skipped: no longer carries the labels of release web; left in place",
			"Namespace/" + ns:  fmt.Sprintf("skipped: holds ConfigMap %s/theirs, which is left in place; left in place too", ns),
		})
		n, err := env.Client.CoreV1().Namespaces().Get(t.Context(), ns, metav1.GetOptions{})
		if err != nil || n.DeletionTimestamp != nil {
			t.Fatalf("namespace %v, %v: want it kept", n, err)
		}
		if !configMapExists(t, ns, "theirs") || inventoryExists(t, s, "web") {
			t.Fatal("want the relabelled ConfigMap kept and the inventory gone")
		}
	})
}

func TestDeleteInterruptedIsFinishedByTheNextAttempt(t *testing.T) {
	s := leastPrivilege(t)
	execute(t, s.executor(t), task(t, "a1", 1, release(s.target)))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var deletes atomic.Int64
	// One request at a time, so exactly the Deployment and the Service
	// are deleted when the attempt is killed.
	crashing := s.executor(t, sequential, withHook(func(req *http.Request) error {
		if objectDelete(req) && deletes.Add(1) > 2 {
			cancel()
			return context.Canceled
		}
		return nil
	}))
	_, err := crashing.Execute(ctx, task(t, "d1", 1, deleteSpec()))
	t.Run("an attempt cancelled mid-delete fails retryably and leaves the inventory", func(t *testing.T) {
		if err == nil || executor.IsTerminal(err) {
			t.Fatalf("interrupted attempt: %v, want a retryable error", err)
		}
		if _, err := env.Client.AppsV1().Deployments(s.target).Get(t.Context(), "web", metav1.GetOptions{}); err == nil {
			t.Fatal("the interrupted attempt did not delete the Deployment")
		}
		if !inventoryExists(t, s, "web") {
			t.Fatal("the interrupted attempt deleted the inventory")
		}
	})
	t.Run("the next attempt finishes with the result of an uninterrupted one", func(t *testing.T) {
		res := execute(t, s.executor(t), task(t, "d1", 2, deleteSpec()))
		wantOutcomes(t, res, allDeleted)
		if res.Counts != (manifests.Counts{Deleted: 5}) || res.Revision != 1 {
			t.Fatalf("result %+v", res)
		}
		if configMapExists(t, s.target, "a") || configMapExists(t, s.target, "c") || inventoryExists(t, s, "web") {
			t.Fatal("objects or the inventory are left")
		}
	})
}

func TestDeleteInterruptedApplyDeletesWhatItWrote(t *testing.T) {
	s := leastPrivilege(t)
	execute(t, s.executor(t), task(t, "a1", 1, taskspec.Manifests{Release: "web", Namespace: s.target, Bundle: configMap("a", "", nil)}))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var applies atomic.Int64
	// One request at a time, so exactly b and c are written when the
	// attempt is killed.
	crashing := s.executor(t, sequential, withHook(func(req *http.Request) error {
		if realApply(req) && applies.Add(1) > 2 {
			cancel()
			return context.Canceled
		}
		return nil
	}))
	// Revision 2 drops a and adds b, c and d; the apply stops after two.
	rev2 := taskspec.Manifests{Release: "web", Namespace: s.target, Bundle: join(configMap("b", "", nil), configMap("c", "", nil), configMap("d", "", nil))}
	if _, err := crashing.Execute(ctx, task(t, "a2", 1, rev2)); err == nil {
		t.Fatal("the interrupted apply succeeded")
	}
	if !configMapExists(t, s.target, "c") || configMapExists(t, s.target, "d") {
		t.Fatal("want the interrupted apply to have written b and c only")
	}
	res := execute(t, s.executor(t), task(t, "d1", 1, deleteSpec()))
	t.Run("a delete after an interrupted apply deletes what the apply wrote", func(t *testing.T) {
		wantOutcomes(t, res, map[string]string{"ConfigMap/a": "deleted", "ConfigMap/b": "deleted", "ConfigMap/c": "deleted"})
		for _, name := range []string{"a", "b", "c", "d"} {
			if configMapExists(t, s.target, name) {
				t.Fatalf("ConfigMap %s still exists", name)
			}
		}
		if inventoryExists(t, s, "web") {
			t.Fatal("the inventory still exists")
		}
	})
}

func TestDeleteStaleAttemptCannotCommit(t *testing.T) {
	s := leastPrivilege(t)
	execute(t, s.executor(t), task(t, "a1", 1, release(s.target)))
	proceed := make(chan struct{})
	blocked := make(chan struct{})
	var once atomic.Bool
	slow := s.executor(t, withHook(func(req *http.Request) error {
		if objectDelete(req) && once.CompareAndSwap(false, true) {
			close(blocked)
			select {
			case <-proceed:
			case <-req.Context().Done():
				return req.Context().Err()
			}
		}
		return nil
	}))
	done := make(chan error, 1)
	go func() {
		_, err := slow.Execute(t.Context(), task(t, "d1", 1, deleteSpec()))
		done <- err
	}()
	select {
	case <-blocked:
	case err := <-done:
		t.Fatalf("attempt 1 ended before its first delete: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("attempt 1 never deleted")
	}
	// Attempt 1's lease expired; attempt 2 runs to the end, then a new
	// release of the same name is applied.
	newer := execute(t, s.executor(t), task(t, "d1", 2, deleteSpec()))
	execute(t, s.executor(t), task(t, "a2", 1, release(s.target)))
	close(proceed)
	err := <-done
	t.Run("the newer attempt deletes the release", func(t *testing.T) {
		wantOutcomes(t, newer, allDeleted)
	})
	t.Run("the older attempt finishing late does not commit", func(t *testing.T) {
		wantTerminal(t, err, manifests.ErrStaleAttempt, "attempt 1 of task d1")
	})
	t.Run("the older attempt does not delete the objects of the new release", func(t *testing.T) {
		for _, name := range []string{"a", "b", "c"} {
			if !configMapExists(t, s.target, name) {
				t.Fatalf("ConfigMap %s of the new release is gone", name)
			}
		}
		if !inventoryExists(t, s, "web") {
			t.Fatal("the new release's inventory is gone")
		}
	})
}

func TestDeleteOlderAttemptStopsBeforeDeleting(t *testing.T) {
	s := leastPrivilege(t)
	execute(t, s.executor(t), task(t, "a1", 1, release(s.target)))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	crashing := s.executor(t, withHook(func(req *http.Request) error {
		if objectDelete(req) {
			cancel()
			return context.Canceled
		}
		return nil
	}))
	if _, err := crashing.Execute(ctx, task(t, "d1", 2, deleteSpec())); err == nil {
		t.Fatal("the interrupted attempt succeeded")
	}
	_, err := s.executor(t).Execute(t.Context(), task(t, "d1", 1, deleteSpec()))
	t.Run("an older attempt starting after a newer one claimed the release stops", func(t *testing.T) {
		wantTerminal(t, err, manifests.ErrStaleAttempt, "attempt 1 of task d1 is superseded by attempt 2")
		if !configMapExists(t, s.target, "a") || !inventoryExists(t, s, "web") {
			t.Fatal("the stale attempt deleted something")
		}
	})
	t.Run("a newer attempt still finishes the delete", func(t *testing.T) {
		wantOutcomes(t, execute(t, s.executor(t), task(t, "d1", 3, deleteSpec())), allDeleted)
	})
}

func TestDeleteWithoutDeleteRights(t *testing.T) {
	s := leastPrivilege(t)
	execute(t, s.executor(t), task(t, "a1", 1, release(s.target)))
	// Another identity of the same agent namespace may do everything in
	// the target namespace but delete.
	name := fmt.Sprintf("agent-%d", userSeq.Add(1))
	cfg := env.AgentConfig(t, kubetest.Agent{Name: name, Namespace: s.agentNS})
	grant(t, s.target, name, []string{"get", "list", "watch", "create", "update", "patch"})
	weak := setup{cfg: cfg, agentNS: s.agentNS, target: s.target}

	_, err := weak.executor(t).Execute(t.Context(), task(t, "d1", 1, deleteSpec()))
	t.Run("a delete without the delete permission fails naming it", func(t *testing.T) {
		wantTerminal(t, err, manifests.ErrForbidden,
			fmt.Sprintf(`"delete" on configmaps in namespace %q (needed for deleting ConfigMap %s/a)`, s.target, s.target),
			fmt.Sprintf(`"delete" on deployments.apps in namespace %q`, s.target))
	})
	t.Run("nothing is deleted", func(t *testing.T) {
		if !configMapExists(t, s.target, "a") || !inventoryExists(t, s, "web") {
			t.Fatal("a refused delete deleted something")
		}
		if _, err := env.Client.AppsV1().Deployments(s.target).Get(t.Context(), "web", metav1.GetOptions{}); err != nil {
			t.Fatalf("the Deployment: %v", err)
		}
	})
}

func sequential(o *manifests.Options) { o.Parallelism = 1 }

// relabel gives ConfigMap ns/name to another release, as someone else
// taking it over would.
func relabel(t *testing.T, ns, name, release string) {
	t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"labels":{"outpost.dev/release":%q}}}`, release)
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Patch(t.Context(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// grant binds user to a Role in ns with verbs on every resource.
func grant(t *testing.T, ns, user string, verbs []string) {
	t.Helper()
	role := "limited-" + user
	_, err := env.Client.RbacV1().Roles(ns).Create(t.Context(), &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: role},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: verbs}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = env.Client.RbacV1().RoleBindings(ns).Create(t.Context(), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDeleteDoesNotWaitForFinalizers(t *testing.T) {
	s := leastPrivilege(t)
	ex := s.executor(t)
	held := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\n"
	execute(t, ex, task(t, "a1", 1, taskspec.Manifests{Release: "web", Namespace: s.target, Bundle: join(held, configMap("gone", "", nil), configMap("kept", "", nil))}))
	t.Cleanup(func() {
		_, _ = env.Client.CoreV1().ConfigMaps(s.target).Patch(context.Background(), "held", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
	})
	if err := env.Client.CoreV1().ConfigMaps(s.target).Delete(t.Context(), "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	res := execute(t, ex, task(t, "d1", 1, deleteSpec()))
	t.Run("an object held by a finalizer is reported deleted without waiting", func(t *testing.T) {
		wantOutcomes(t, res, map[string]string{"ConfigMap/held": "deleted", "ConfigMap/kept": "deleted", "ConfigMap/gone": "skipped: no longer exists"})
		cm, err := env.Client.CoreV1().ConfigMaps(s.target).Get(t.Context(), "held", metav1.GetOptions{})
		if err != nil || cm.DeletionTimestamp == nil {
			t.Fatalf("ConfigMap held: %v, %v: want it terminating", cm, err)
		}
		if inventoryExists(t, s, "web") {
			t.Fatal("the inventory still exists")
		}
	})
}

func TestDeleteRefusedByAdmissionDeletesNothing(t *testing.T) {
	s := leastPrivilege(t)
	ex := s.executor(t)
	execute(t, ex, task(t, "a1", 1, release(s.target)))
	protect(t, s.target, "b")
	_, err := ex.Execute(t.Context(), task(t, "d1", 1, deleteSpec()))
	t.Run("a delete an admission policy refuses fails its dry run naming the object", func(t *testing.T) {
		wantTerminal(t, err, manifests.ErrDryRun, "nothing of release web was deleted", fmt.Sprintf("ConfigMap %s/b: ", s.target), "b is protected")
	})
	t.Run("nothing is deleted", func(t *testing.T) {
		for _, name := range []string{"a", "b", "c"} {
			if !configMapExists(t, s.target, name) {
				t.Fatalf("ConfigMap %s was deleted", name)
			}
		}
		if _, err := env.Client.AppsV1().Deployments(s.target).Get(t.Context(), "web", metav1.GetOptions{}); err != nil {
			t.Fatalf("the Deployment: %v", err)
		}
		if !inventoryExists(t, s, "web") {
			t.Fatal("the inventory was deleted")
		}
	})
}

// protect makes the API server refuse to delete ConfigMap ns/name, with a
// ValidatingAdmissionPolicy, and waits until it does.
func protect(t *testing.T, ns, name string) {
	t.Helper()
	ctx := t.Context()
	adm := env.Client.AdmissionregistrationV1()
	policyName := "protect-" + ns
	fail := admissionregistrationv1.Fail
	_, err := adm.ValidatingAdmissionPolicies().Create(ctx, &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: policyName},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Delete},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{Expression: fmt.Sprintf("oldObject.metadata.name != %q", name), Message: name + " is protected"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = adm.ValidatingAdmissionPolicyBindings().Create(ctx, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: policyName},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policyName,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns},
			}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = adm.ValidatingAdmissionPolicyBindings().Delete(context.Background(), policyName, metav1.DeleteOptions{})
		_ = adm.ValidatingAdmissionPolicies().Delete(context.Background(), policyName, metav1.DeleteOptions{})
	})
	// The API server picks a policy up within about a second.
	for deadline := time.Now().Add(30 * time.Second); ; {
		err := env.Client.CoreV1().ConfigMaps(ns).Delete(ctx, name, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil && strings.Contains(err.Error(), "is protected") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the policy protecting ConfigMap %s/%s never took effect: %v", ns, name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
