package taskspec

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestHelmValidate(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	const ns = `"release":"web","namespace":"app"`
	tests := []struct {
		name, spec, reason string
	}{
		{"a release is required", `{"namespace":"app","chart":{"artifact":"` + digest + `"}}`, "release: is required"},
		{"a namespace is required", `{"release":"web","chart":{"artifact":"` + digest + `"}}`, "namespace: is required"},
		{"an unknown action is rejected", `{` + ns + `,"action":"template"}`, `action "template"`},
		{"install needs a chart", `{` + ns + `}`, "chart: is required for install"},
		{"uninstall takes no chart", `{` + ns + `,"action":"uninstall","chart":{"artifact":"` + digest + `"}}`, "chart: not allowed for uninstall"},
		{"rollback takes no values", `{` + ns + `,"action":"rollback","values":{"a":1}}`, "values: not allowed for rollback"},
		{"a revision is only for rollback", `{` + ns + `,"revision":2,"chart":{"artifact":"` + digest + `"}}`, "revision: only for rollback"},
		{"values must be an object", `{` + ns + `,"values":[1],"chart":{"artifact":"` + digest + `"}}`, "values: want a JSON object"},
		{"a chart has exactly one source", `{` + ns + `,"chart":{"artifact":"` + digest + `","repository":"https://c.example.com","name":"x"}}`, "exactly one of archive, artifact and repository"},
		{"a plaintext password is rejected", `{` + ns + `,"chart":{"repository":"https://c.example.com","name":"x","username":"u","password":"hunter2"}}`, "password: must be a vault reference"},
		{"credentials in the URL are rejected", `{` + ns + `,"chart":{"repository":"https://u:p@c.example.com","name":"x"}}`, "carries credentials in the URL"},
		{"an HTTP repository needs a chart name", `{` + ns + `,"chart":{"repository":"https://c.example.com"}}`, "name: is required"},
		{"an OCI reference takes no name", `{` + ns + `,"chart":{"repository":"oci://r.example.com/charts/web","name":"web"}}`, "name: not used"},
		{"other schemes are rejected", `{` + ns + `,"chart":{"repository":"ftp://c.example.com/x","name":"x"}}`, "want an https://, http:// or oci:// URL"},
		{"plain_http is only for OCI", `{` + ns + `,"chart":{"repository":"https://c.example.com","name":"x","plain_http":true}}`, "plain_http: only for oci://"},
		{"a username needs a password", `{` + ns + `,"chart":{"repository":"https://c.example.com","name":"x","username":"u"}}`, "give both or neither"},
		{"a timeout beyond an hour is rejected", `{` + ns + `,"timeout_seconds":7200,"chart":{"artifact":"` + digest + `"}}`, "timeout_seconds 7200"},
		{"keep_history is only for uninstall", `{` + ns + `,"keep_history":true,"chart":{"artifact":"` + digest + `"}}`, "keep_history: only for uninstall"},
		{"repository settings need a repository", `{` + ns + `,"chart":{"artifact":"` + digest + `","version":"1.0.0"}}`, "only with repository"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(KindHelm, []byte(tt.spec))
			if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error = %v, want ErrInvalidSpec saying %q", err, tt.reason)
			}
		})
	}
	t.Run("a repository chart with vault credentials is accepted", func(t *testing.T) {
		var s Helm
		spec := `{` + ns + `,"values":{"replicas":2},"chart":{"repository":"oci://r.example.com/charts/web","version":"^1.2","username":"vault://k8s/registry/user","password":"vault://k8s/registry/password"}}`
		if err := Decode([]byte(spec), &s); err != nil {
			t.Fatal(err)
		}
		if s.EffectiveAction() != HelmInstall || s.ConflictKey() != "helm/app/web" || s.Timeout() != DefaultHelmTimeoutSeconds || s.EffectiveHistoryMax() != DefaultHelmHistoryMax {
			t.Fatalf("defaults: %+v", s)
		}
	})
	t.Run("atomic implies waiting", func(t *testing.T) {
		s := Helm{Atomic: true}
		if !s.Waits() {
			t.Fatal("an atomic task must wait")
		}
	})
}

func FuzzValidateHelmSpec(f *testing.F) {
	f.Add([]byte(`{"release":"web","namespace":"app","chart":{"repository":"oci://r.example.com/c/web","password":"vault://k8s/r/p","username":"u"}}`))
	f.Add([]byte(`{"release":"web","namespace":"app","action":"rollback","revision":3}`))
	f.Add([]byte(`{"release":"web","namespace":"app","values":{"a":{"b":[1,2]}},"chart":{"archive":"H4sI"}}`))
	f.Fuzz(func(t *testing.T, spec []byte) {
		err := Validate(KindHelm, spec)
		if err != nil {
			if !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("error %v does not wrap ErrInvalidSpec", err)
			}
			return
		}
		// An accepted spec re-encodes to one that is accepted, so the hub
		// and the agent never disagree about it.
		var s Helm
		if err := Decode(spec, &s); err != nil {
			t.Fatalf("Decode after Validate: %v", err)
		}
		again, err := json.Marshal(&s)
		if err != nil {
			t.Fatal(err)
		}
		if err := Validate(KindHelm, again); err != nil {
			t.Fatalf("re-encoded spec %s rejected: %v", again, err)
		}
	})
}
