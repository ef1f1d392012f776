package agent_test

import (
	"strings"
	"testing"
)

func TestSchemaRefusesBadValues(t *testing.T) {
	cases := []struct {
		name string
		sets map[string]any
		// want are the parts the error must name: the field, and what is
		// wrong with it.
		want []string
	}{
		{"a hub URL that is not https", map[string]any{"hub.url": "http://hub.example.com"}, []string{"/hub/url", "does not match pattern"}},
		{"a missing hub URL", map[string]any{"hub": map[string]any{}}, []string{"/hub", "url"}},
		{"an unknown RBAC profile", map[string]any{"rbac.profile": "admin"}, []string{"/rbac/profile", "one of 'namespaced', 'secrets-only', 'cluster'"}},
		{"an unknown top-level key", map[string]any{"hubUrl": "https://hub.example.com"}, []string{"hubUrl", "not allowed"}},
		{"a misspelt nested key", map[string]any{"terraform.enable": true}, []string{"/terraform", "enable"}},
		{"a target namespace that is not a DNS label", map[string]any{"rbac.targetNamespaces": []any{"shop", "Web_Apps"}}, []string{"/rbac/targetNamespaces/1", "does not match pattern"}},
		{"an environment without its tenant", map[string]any{"environment": "prod"}, []string{"/environment", "does not match pattern"}},
		{"resources that are not a quantity", map[string]any{"resources.limits": map[string]any{"memory": "lots"}}, []string{"/resources/limits/memory", "does not match pattern"}},
		{"resources of an unknown shape", map[string]any{"resources.memory": "512Mi"}, []string{"/resources", "memory"}},
		{"terraform.enabled as a string", map[string]any{"terraform.enabled": "yes"}, []string{"/terraform/enabled", "boolean"}},
		{"a network policy port out of range", map[string]any{"networkPolicies.hub.port": 70000}, []string{"/networkPolicies/hub/port", "maximum"}},
		{"a hub CIDR that is a host name", map[string]any{"networkPolicies.hub.cidr": "hub.example.com"}, []string{"/networkPolicies/hub/cidr"}},
	}
	for _, tc := range cases {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			_, err := render(t, with(baseValues(), tc.sets))
			if err == nil {
				t.Fatal("rendered; want the schema to refuse the values")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestTemplatesRefuseConflictingValues(t *testing.T) {
	cases := []struct {
		name string
		sets map[string]any
		want string
	}{
		{"a token value and an existing token Secret", map[string]any{"bootstrapToken.existingSecret": "agent-token"}, "bootstrapToken.value or bootstrapToken.existingSecret, not both"},
		{"a CA bundle and an existing CA ConfigMap", map[string]any{"hub.caBundle": "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n", "hub.existingCaConfigMap": "hub-ca"}, "hub.caBundle or hub.existingCaConfigMap, not both"},
	}
	for _, tc := range cases {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			_, err := render(t, with(baseValues(), tc.sets))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestSchemaAcceptsTheDefaultsWithTheRequiredValues(t *testing.T) {
	vals := map[string]any{
		"hub":         map[string]any{"url": "https://hub.example.com:8443/outpost"},
		"environment": "acme/prod",
	}
	if _, err := render(t, vals); err != nil {
		t.Fatal(err)
	}
}
