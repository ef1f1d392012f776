package taskspec

import (
	"encoding/json"
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
		{"a delete with a bundle is rejected", `{"release":"web","delete":true,"bundle":"x"}`, "bundle: must be empty when delete is set"},
		{"a delete with an artifact is rejected", `{"release":"web","delete":true,"artifact":"` + digest + `"}`, "artifact: must be empty when delete is set"},
		{"a delete that adopts is rejected", `{"release":"web","delete":true,"adopt":true}`, "adopt: may not be set with delete"},
		{"a delete of a given revision is rejected", `{"release":"web","delete":true,"revision":3}`, "revision 3: must be 0 when delete is set"},
		{"a delete with prune off is rejected", `{"release":"web","delete":true,"prune":false}`, "prune: may not be false when delete is set"},
		{"a delete without a release is rejected", `{"delete":true}`, "release: is required"},
		{"a delete with a malformed namespace is rejected", `{"release":"web","delete":true,"namespace":"A"}`, `namespace "A"`},
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
	t.Run("a delete naming only the release is accepted", func(t *testing.T) {
		for _, spec := range []string{`{"release":"web","delete":true}`, `{"release":"web","delete":true,"prune":true,"namespace":"app"}`} {
			var s Manifests
			if err := Decode([]byte(spec), &s); err != nil {
				t.Fatalf("%s: %v", spec, err)
			}
			if !s.Delete || s.Release != "web" {
				t.Fatalf("decoded %+v", s)
			}
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

func FuzzValidateManifestsSpec(f *testing.F) {
	for _, s := range []string{
		`{"release":"web","namespace":"app","bundle":"kind: ConfigMap"}`,
		`{"release":"web","revision":7,"artifact":"sha256:` + strings.Repeat("ab", 32) + `","prune":false,"adopt":true}`,
		`{"release":"web","delete":true}`,
		`{"release":"web","delete":true,"prune":true}`,
		`{"release":"web","delete":true,"prune":false}`,
		`{"release":"web","delete":true,"bundle":"x"}`,
		`{}`, `[]`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, spec []byte) {
		err := Validate(KindManifests, spec)
		if err != nil {
			if !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("error %v does not wrap ErrInvalidSpec", err)
			}
			return
		}
		var s Manifests
		if err := Decode(spec, &s); err != nil {
			t.Fatalf("Decode after Validate: %v", err)
		}
		if s.Delete && (s.Bundle != "" || s.Artifact != "" || s.Adopt || s.Revision != 0 || !s.PruneEnabled()) {
			t.Fatalf("accepted a delete that also describes a revision: %+v", s)
		}
		// An accepted spec re-encodes to one that is accepted, so the hub
		// and the agent never disagree about it.
		again, err := json.Marshal(&s)
		if err != nil {
			t.Fatal(err)
		}
		if err := Validate(KindManifests, again); err != nil {
			t.Fatalf("re-encoded spec %s rejected: %v", again, err)
		}
	})
}
