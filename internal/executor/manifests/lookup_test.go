package manifests_test

import (
	"fmt"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outposthq/outpost/internal/executor/manifests"
	"github.com/outposthq/outpost/internal/kube/kubetest"
	"github.com/outposthq/outpost/internal/taskspec"
)

// noList provisions an agent that may do everything but list in its
// target namespace.
func noList(t *testing.T) setup {
	t.Helper()
	agentNS := env.Namespace(t, "agent")
	target := env.Namespace(t, "app")
	name := fmt.Sprintf("agent-%d", userSeq.Add(1))
	cfg := env.AgentConfig(t, kubetest.Agent{Name: name, Namespace: agentNS})
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "deploy-without-list"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"},
			Verbs: []string{"get", "create", "update", "patch", "delete"}}},
	}
	if _, err := env.Client.RbacV1().Roles(target).Create(t.Context(), role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "deploy-without-list"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: name}},
	}
	if _, err := env.Client.RbacV1().RoleBindings(target).Create(t.Context(), binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return setup{cfg: cfg, agentNS: agentNS, target: target}
}

// lookupCase is a release of n ConfigMaps, two of which exist before its
// first task: cm-0 unmanaged, cm-1 of another release.
func lookupCase(t *testing.T, s setup, n int) (taskspec.Manifests, map[string]string) {
	t.Helper()
	createConfigMap(t, s.target, "cm-0", nil)
	other := execute(t, s.executor(t), task(t, "other", 1, taskspec.Manifests{Release: "other", Namespace: s.target, Bundle: configMap("cm-1", "", nil)}))
	if other.Counts.Created != 1 {
		t.Fatalf("release other: %+v", other.Counts)
	}
	want := map[string]string{
		"ConfigMap/cm-0": "skipped: exists and is not managed by outpost release mine",
		"ConfigMap/cm-1": "skipped: owned by release other",
	}
	for i := 2; i < n; i++ {
		want[fmt.Sprintf("ConfigMap/cm-%d", i)] = "created"
	}
	return taskspec.Manifests{Release: "mine", Namespace: s.target, Bundle: join(configMaps(n, nil)...)}, want
}

func TestListDeniedFallsBackToGets(t *testing.T) {
	s := noList(t)
	n := manifests.ListMin + 3
	spec, want := lookupCase(t, s, n)
	var reqs requests
	res := execute(t, s.executor(t, reqs.hook()), task(t, "m1", 1, spec))
	t.Run("collision defense holds and the others are created", func(t *testing.T) {
		wantOutcomes(t, res, want)
	})
	t.Run("every object is read with a GET, none listed", func(t *testing.T) {
		if reqs.lists.Load() != 0 || reqs.gets.Load() != int64(n) {
			t.Fatalf("%v; want %d GETs and no LIST", &reqs, n)
		}
	})
}

func TestListPagesAndBudget(t *testing.T) {
	for _, tc := range []struct {
		name                string
		page, budget        int
		wantLists, wantGets func(n int) bool
		unrelatedObjects    int
	}{
		{
			name: "a LIST over several pages finds every object", page: 3, budget: 100, unrelatedObjects: 10,
			wantLists: func(l int) bool { return l > 1 }, wantGets: func(g int) bool { return g == 0 },
		},
		{
			name: "a LIST over its budget leaves the rest to GETs", page: 2, budget: 1, unrelatedObjects: 10,
			wantLists: func(l int) bool { return l >= 1 }, wantGets: func(g int) bool { return g > 0 },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := leastPrivilege(t)
			for i := range tc.unrelatedObjects {
				// Sorted among and around the release's names.
				createConfigMap(t, s.target, fmt.Sprintf("cm-%d-x", i), nil)
			}
			n := manifests.ListMin + 3
			spec, want := lookupCase(t, s, n)
			var reqs requests
			ex := s.executor(t, reqs.hook())
			manifests.SetListPaging(ex, tc.page, tc.budget)
			res := execute(t, ex, task(t, "m1", 1, spec))
			wantOutcomes(t, res, want)
			if !tc.wantLists(int(reqs.lists.Load())) || !tc.wantGets(int(reqs.gets.Load())) {
				t.Fatalf("%v", &reqs)
			}
		})
	}
}
