package taskspec

import (
	"errors"
	"strings"
	"testing"
)

func TestManifestsValidate(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		name, spec, reason string
	}{
		{"a release is required", `{"bundle":"x"}`, "release: is required"},
		{"an upper-case release is rejected", `{"release":"Web","bundle":"x"}`, `release "Web"`},
		{"a release longer than 53 characters is rejected", `{"release":"` + strings.Repeat("a", 54) + `","bundle":"x"}`, "at most 53"},
		{"a release ending in a dash is rejected", `{"release":"web-","bundle":"x"}`, `release "web-"`},
		{"a bad namespace is rejected", `{"release":"web","namespace":"a_b","bundle":"x"}`, `namespace "a_b"`},
		{"a negative revision is rejected", `{"release":"web","revision":-1,"bundle":"x"}`, "revision -1"},
		{"a bundle or an artifact is required", `{"release":"web"}`, "one of bundle and artifact is required"},
		{"bundle and artifact together are rejected", `{"release":"web","bundle":"x","artifact":"` + digest + `"}`, "not both"},
		{"a malformed artifact digest is rejected", `{"release":"web","artifact":"sha256:XYZ"}`, `artifact "sha256:XYZ"`},
		{"an unknown field is rejected", `{"release":"web","bundle":"x","force":true}`, `unknown field "force"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(KindManifests, []byte(tt.spec))
			if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error = %v, want ErrInvalidSpec saying %q", err, tt.reason)
			}
		})
	}
	t.Run("an inline bundle is accepted and prunes by default", func(t *testing.T) {
		var s Manifests
		if err := Decode([]byte(`{"release":"web","namespace":"app","bundle":"kind: ConfigMap"}`), &s); err != nil {
			t.Fatal(err)
		}
		if !s.PruneEnabled() {
			t.Fatal("prune should default to true")
		}
	})
	t.Run("an artifact with prune off is accepted", func(t *testing.T) {
		var s Manifests
		if err := Decode([]byte(`{"release":"web","revision":7,"artifact":"`+digest+`","prune":false,"adopt":true}`), &s); err != nil {
			t.Fatal(err)
		}
		if s.PruneEnabled() || !s.Adopt || s.Revision != 7 {
			t.Fatalf("decoded %+v", s)
		}
	})
}
