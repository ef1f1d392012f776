package agent_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"helm.sh/helm/v4/pkg/action"
)

// renderCases are the golden files: every RBAC profile, with and without
// terraform and network policies, and the optional integrations.
var renderCases = []struct {
	name string
	sets map[string]any
}{
	{"namespaced", nil},
	{"namespaced-terraform-netpol", map[string]any{"terraform.enabled": true, "networkPolicies.enabled": true, "networkPolicies.hub.cidr": "203.0.113.10/32", "networkPolicies.kubeAPI.cidr": "10.96.0.1/32", "networkPolicies.kubeAPI.port": 6443}},
	{"secrets-only", map[string]any{"rbac.profile": "secrets-only"}},
	{"secrets-only-terraform-netpol", map[string]any{"rbac.profile": "secrets-only", "terraform.enabled": true, "networkPolicies.enabled": true}},
	{"cluster", map[string]any{"rbac.profile": "cluster", "rbac.targetNamespaces": nil}},
	{"cluster-terraform-netpol", map[string]any{"rbac.profile": "cluster", "terraform.enabled": true, "networkPolicies.enabled": true, "networkPolicies.hub.cidr": "203.0.113.10/32"}},
	{"existing-secrets-identity-proxy", map[string]any{
		"bootstrapToken.value":                "",
		"bootstrapToken.existingSecret":       "agent-token",
		"hub.caBundle":                        "-----BEGIN CERTIFICATE-----\nMIIBexample\n-----END CERTIFICATE-----\n",
		"workloadIdentity.aws.roleArn":        "arn:aws:iam::123456789012:role/outpost-agent",
		"workloadIdentity.azure.clientId":     "00000000-0000-0000-0000-000000000001",
		"workloadIdentity.gcp.serviceAccount": "outpost-agent@acme.iam.gserviceaccount.com",
		"proxy.httpsProxy":                    "http://proxy.corp:3128",
		"proxy.noProxy":                       ".svc,.cluster.local,10.0.0.0/8",
		"image.digest":                        "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"rbac.targetNamespaces":               []any{},
		"serviceAccount.annotations":          map[string]any{"example.com/owner": "platform"},
		"networkPolicies.enabled":             true,
		"networkPolicies.extraEgress":         []any{map[string]any{"ports": []any{map[string]any{"port": 8200, "protocol": "TCP"}}}},
		"hub.existingCaConfigMap":             "",
		"bootstrapToken.existingSecretKey":    "enroll",
		"networkPolicies.dns.podLabels":       map[string]any{"k8s-app": "coredns"},
		"networkPolicies.hub.port":            8443,
	}},
}

func TestChartRendersEveryProfile(t *testing.T) {
	for _, tc := range renderCases {
		t.Run(tc.name, func(t *testing.T) {
			rel := mustRender(t, with(baseValues(), tc.sets))
			got := []byte(rel.Manifest + "\n---\n# NOTES.txt\n" + rel.Info.Notes + "\n")
			golden := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("rendered chart differs from %s (go test -update rewrites it):\n%s", golden, got)
			}
		})
	}
}

func TestChartLints(t *testing.T) {
	for _, tc := range renderCases {
		t.Run(tc.name, func(t *testing.T) {
			lint := action.NewLint()
			lint.Strict = true
			lint.Namespace = "outpost-system"
			lint.KubeVersion = kubeVersion(t)
			res := lint.Run([]string{chartDir(t)}, with(baseValues(), tc.sets))
			for _, m := range res.Messages {
				t.Log(m)
			}
			if len(res.Errors) > 0 {
				t.Errorf("helm lint --strict: %v", res.Errors)
			}
		})
	}
}
