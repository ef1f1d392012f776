package hub

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

func TestHubPodMeetsTheRestrictedProfile(t *testing.T) {
	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	restricted := api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}
	ch := loadChart(t)
	for _, tc := range renderCases {
		t.Run(tc.name, func(t *testing.T) {
			rel, err := render(t.Context(), ch, parseValues(t, tc.values))
			if err != nil {
				t.Fatal(err)
			}
			tpl := deployment(t, objects(t, rel.Manifest)).Spec.Template
			res := policy.AggregateCheckResults(eval.EvaluatePod(restricted, &tpl.ObjectMeta, &tpl.Spec))
			if !res.Allowed {
				t.Errorf("the hub pod breaks the restricted profile: %s", res.ForbiddenDetail())
			}
			checkHardened(t, tpl.Spec)
		})
	}
}

// checkHardened asserts what the restricted profile leaves optional: a
// read-only root filesystem with a writable /tmp, a numeric non-root UID,
// resources, and no API token.
func checkHardened(t *testing.T, spec corev1.PodSpec) {
	t.Helper()
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token; the hub never calls the API")
	}
	if sc := spec.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Error("the pod does not run as a numeric non-root UID")
	}
	emptyDirs := map[string]bool{}
	for _, v := range spec.Volumes {
		if v.EmptyDir != nil {
			emptyDirs[v.Name] = true
		}
	}
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("container %s has a writable root filesystem", c.Name)
		}
		if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("container %s has no memory request and limit", c.Name)
		}
		tmp := false
		for _, m := range c.VolumeMounts {
			if m.MountPath == "/tmp" && emptyDirs[m.Name] {
				tmp = true
			}
			if strings.HasPrefix(m.MountPath, "/var/lib/outpost-hub") && m.ReadOnly {
				t.Errorf("container %s mounts the database volume read-only", c.Name)
			}
		}
		if !tmp {
			t.Errorf("container %s has no writable emptyDir on /tmp", c.Name)
		}
	}
}
