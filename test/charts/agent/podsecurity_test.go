package agent_test

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

func TestAgentPodPassesTheRestrictedPodSecurityProfile(t *testing.T) {
	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lv := api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}
	for _, tc := range renderCases {
		t.Run(tc.name, func(t *testing.T) {
			var d appsv1.Deployment
			find(t, mustRender(t, with(baseValues(), tc.sets)), "Deployment", &d)
			pod := d.Spec.Template
			for _, r := range eval.EvaluatePod(lv, &pod.ObjectMeta, &pod.Spec) {
				if !r.Allowed {
					t.Errorf("restricted profile refuses the pod: %s: %s", r.ForbiddenReason, r.ForbiddenDetail)
				}
			}
		})
	}
}

// TestAgentPodIsLockedDown checks what the restricted profile does not
// require but the agent promises: a read-only root filesystem, no port,
// no Service, in-memory scratch space, resource limits.
func TestAgentPodIsLockedDown(t *testing.T) {
	for _, tc := range renderCases {
		t.Run(tc.name, func(t *testing.T) {
			rel := mustRender(t, with(baseValues(), tc.sets))
			for _, o := range objects(t, rel) {
				if o.Kind == "Service" || o.Kind == "Ingress" {
					t.Errorf("renders a %s %s; the agent only dials out", o.Kind, o.Metadata.Name)
				}
			}
			var d appsv1.Deployment
			find(t, rel, "Deployment", &d)
			spec := d.Spec.Template.Spec
			if len(spec.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(spec.Containers))
			}
			c := spec.Containers[0]
			if len(c.Ports) != 0 {
				t.Errorf("container ports %v, want none", c.Ports)
			}
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Error("root filesystem is writable")
			}
			if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
				t.Error("no numeric non-root UID")
			}
			if spec.AutomountServiceAccountToken == nil || !*spec.AutomountServiceAccountToken {
				t.Error("the service account token is not mounted; the agent needs it")
			}
			if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("resources %v lack a memory request or limit", c.Resources)
			}
			for _, v := range spec.Volumes {
				if v.EmptyDir != nil && v.EmptyDir.Medium != "Memory" {
					t.Errorf("emptyDir %s is on disk; scratch space holds plan files and must be in memory", v.Name)
				}
			}
			env := map[string]bool{}
			for _, e := range c.Env {
				env[e.Name] = true
			}
			if !env["POD_NAME"] || !env["OUTPOST_NAMESPACE"] {
				t.Errorf("env %v lacks POD_NAME or OUTPOST_NAMESPACE", c.Env)
			}
		})
	}
}
