package manifests_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/outposthq/outpost/internal/executor/manifests"
	"github.com/outposthq/outpost/internal/taskspec"
)

func clusterAdminBinding(kind, ns string) string {
	meta := "metadata: {name: ops}\n"
	if ns != "" {
		meta = fmt.Sprintf("metadata: {name: ops, namespace: %s}\n", ns)
	}
	return "apiVersion: rbac.authorization.k8s.io/v1\nkind: " + kind + "\n" + meta +
		"roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\n" +
		"subjects:\n- {apiGroup: rbac.authorization.k8s.io, kind: User, name: ops}\n"
}

func pod(name, securityLine string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  %s
  containers:
  - name: main
    image: busybox
`, name, securityLine)
}

func TestDenyList(t *testing.T) {
	s := leastPrivilege(t)
	ex := s.executor(t)
	rejected := []struct {
		name, bundle string
		want         string
	}{
		{"a ClusterRoleBinding to cluster-admin", clusterAdminBinding("ClusterRoleBinding", ""), `ClusterRoleBinding ops (document 2): rule "cluster-admin binding": roleRef is the ClusterRole cluster-admin`},
		{"a RoleBinding to cluster-admin", clusterAdminBinding("RoleBinding", ""), `RoleBinding ` + s.target + `/ops (document 2): rule "cluster-admin binding"`},
		{"a privileged container", pod("p", "hostPID: false") + "    securityContext: {privileged: true}\n", `spec.containers[0] (main).securityContext.privileged is true`},
		{"a host network pod", pod("p", "hostNetwork: true"), "spec.hostNetwork is true"},
		{"a hostPath volume in a Deployment", strings.Replace(deployment, "      containers:", "      volumes:\n      - {name: root, hostPath: {path: /}}\n      containers:", 1), "spec.template.spec.volumes[0] (root) is a hostPath volume"},
		{"SYS_ADMIN in a CronJob", `apiVersion: batch/v1
kind: CronJob
metadata: {name: c}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: main
            image: busybox
            securityContext: {capabilities: {add: [CAP_SYS_ADMIN]}}
`, "capabilities.add holds CAP_SYS_ADMIN"},
	}
	for _, tt := range rejected {
		t.Run(tt.name+" is rejected by default", func(t *testing.T) {
			_, err := ex.Execute(t.Context(), task(t, "d", 1, taskspec.Manifests{Release: "web", Namespace: s.target, Bundle: join(configMap("a", "", nil), tt.bundle)}))
			wantTerminal(t, err, manifests.ErrDenied, tt.want)
			if configMapExists(t, s.target, "a") {
				t.Fatal("a denied bundle wrote something")
			}
		})
	}
	t.Run("privileged pods are allowed when the agent allows them", func(t *testing.T) {
		allow := s.executor(t, func(o *manifests.Options) { o.AllowPrivileged = true })
		res := execute(t, allow, task(t, "d-priv", 1, taskspec.Manifests{Release: "priv", Namespace: s.target, Bundle: pod("p", "hostNetwork: true")}))
		wantOutcomes(t, res, map[string]string{"Pod/p": "created"})
	})
	t.Run("extra kinds from the agent's flag are denied", func(t *testing.T) {
		extra, err := manifests.ParseDenyRules("Secret, rbac.authorization.k8s.io/*")
		if err != nil {
			t.Fatal(err)
		}
		strict := s.executor(t, func(o *manifests.Options) { o.Deny = append(manifests.DefaultDeny(), extra...) })
		_, err = strict.Execute(t.Context(), task(t, "d-extra", 1, taskspec.Manifests{Release: "web", Namespace: s.target, Bundle: "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"}))
		wantTerminal(t, err, manifests.ErrDenied, `Secret `+s.target+`/s (document 1): rule "kind Secret": the kind is not allowed`)
	})
}

func TestDenyListOffAllowsClusterAdminBinding(t *testing.T) {
	s := admin(t)
	ex := s.executor(t, func(o *manifests.Options) { o.Deny = []manifests.Rule{} })
	res := execute(t, ex, task(t, "d-off", 1, taskspec.Manifests{Release: "rbac", Namespace: s.target, Bundle: clusterAdminBinding("RoleBinding", "")}))
	wantOutcomes(t, res, map[string]string{"RoleBinding/ops": "created"})
}

func TestParseDenyRules(t *testing.T) {
	for _, bad := range []string{"apps/deployment", "Bad_Group/Deployment", "/Deployment", "apps/"} {
		t.Run(fmt.Sprintf("%q is rejected", bad), func(t *testing.T) {
			if _, err := manifests.ParseDenyRules(bad); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	t.Run("kinds, core kinds and whole groups parse", func(t *testing.T) {
		rules, err := manifests.ParseDenyRules(" rbac.authorization.k8s.io/ClusterRoleBinding, Secret ,,apps/*")
		if err != nil {
			t.Fatal(err)
		}
		got := fmt.Sprint(rules[0].Group, "/", rules[0].Kind, " ", rules[1].Group, "/", rules[1].Kind, " ", rules[2].Group, "/", rules[2].Kind)
		if len(rules) != 3 || got != "rbac.authorization.k8s.io/ClusterRoleBinding /Secret apps/*" {
			t.Fatalf("rules %s", got)
		}
	})
}
