package taskspec

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestTerraformValidate(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	const ws = `"workspace":"db"`
	art := `"artifact":"` + digest + `"`
	tests := []struct {
		name, spec, reason string
	}{
		{"a workspace is required", `{` + art + `}`, "workspace: is required"},
		{"a workspace must be a DNS label", `{"workspace":"Prod_DB",` + art + `}`, `workspace "Prod_DB"`},
		{"an unknown action is rejected", `{` + ws + `,` + art + `,"action":"import"}`, `action "import"`},
		{"a module source is required", `{` + ws + `}`, "give exactly one module source"},
		{"two module sources are rejected", `{` + ws + `,` + art + `,"url":"https://m.example.com/m.tgz"}`, "give exactly one module source"},
		{"a malformed artifact digest is rejected", `{` + ws + `,"artifact":"sha256:xyz"}`, `artifact "sha256:xyz"`},
		{"a plain HTTP url is rejected", `{` + ws + `,"url":"http://m.example.com/m.tgz"}`, "want https://host/path"},
		{"credentials in the url are rejected", `{` + ws + `,"url":"https://u:p@m.example.com/m.tgz"}`, "carries credentials"},
		{"an oversized inline archive is rejected", `{` + ws + `,"archive":"` + strings.Repeat("A", (MaxInlineModuleBytes+3)/3*4+4) + `"}`, "send it as an artifact"},
		{"a path escaping the archive is rejected", `{` + ws + `,` + art + `,"path":"../etc"}`, `path "../etc"`},
		{"an absolute path is rejected", `{` + ws + `,` + art + `,"path":"/etc"}`, `path "/etc"`},
		{"a path with dot elements is rejected", `{` + ws + `,` + art + `,"path":"a/./b"}`, `path "a/./b"`},
		{"a path with a backslash is rejected", `{` + ws + `,` + art + `,"path":"a\\b"}`, `path "a\\b"`},
		{"a bad variable name is rejected", `{` + ws + `,` + art + `,"variables":{"1x":1}}`, `variables: name "1x"`},
		{"a hyphenated variable name is rejected", `{` + ws + `,` + art + `,"variables":{"a-b":1}}`, `variables: name "a-b"`},
		{"a plaintext sensitive variable is rejected", `{` + ws + `,` + art + `,"sensitive_variables":{"pw":"hunter2"}}`, "sensitive_variables.pw: must be a vault reference"},
		{"a variable given twice is rejected", `{` + ws + `,` + art + `,"variables":{"pw":"x"},"sensitive_variables":{"pw":"vault://k8s/db/pw"}}`, "sensitive_variables.pw: also in variables"},
		{"a negative timeout is rejected", `{` + ws + `,` + art + `,"timeout_seconds":-1}`, "timeout_seconds -1"},
		{"a timeout beyond four hours is rejected", `{` + ws + `,` + art + `,"timeout_seconds":20000}`, "timeout_seconds 20000"},
		{"too much parallelism is rejected", `{` + ws + `,` + art + `,"parallelism":1000}`, "parallelism 1000"},
		{"an unknown field is rejected", `{` + ws + `,` + art + `,"oci":"oci://r/m"}`, `unknown field "oci"`},
		{"an oci url without tag or digest is rejected", `{` + ws + `,"url":"oci://r.example.com/modules/db"}`, "name a tag or a digest"},
		{"an oci url without repository is rejected", `{` + ws + `,"url":"oci://r.example.com"}`, "want oci://host/repository:tag"},
		{"an oci url with an upper-case repository is rejected", `{` + ws + `,"url":"oci://r.example.com/Modules/db:1"}`, `repository "Modules/db"`},
		{"an oci url with a bad digest is rejected", `{` + ws + `,"url":"oci://r.example.com/m@sha256:12"}`, "digest: want sha256:"},
		{"a plaintext registry password is rejected", `{` + ws + `,"url":"oci://r.example.com/m:1","username":"u","password":"hunter2"}`, "password: must be a vault reference"},
		{"a username without password is rejected", `{` + ws + `,"url":"oci://r.example.com/m:1","username":"u"}`, "give both or neither"},
		{"registry credentials with an https url are rejected", `{` + ws + `,"url":"https://m.example.com/m.tgz","username":"u","password":"vault://k8s/r/pw"}`, "only with an oci:// url"},
		{"plain_http without a url is rejected", `{` + ws + `,` + art + `,"plain_http":true}`, "only with an oci:// url"},
		{"an unknown approval policy is rejected", `{` + ws + `,` + art + `,"approval":"sometimes"}`, `approval "sometimes"`},
		{"a malformed approved plan is rejected", `{` + ws + `,` + art + `,"approved_plan":"md5:00"}`, `approved_plan "md5:00"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Decode([]byte(tt.spec), new(Terraform))
			if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error = %v, want ErrInvalidSpec saying %q", err, tt.reason)
			}
		})
	}
	t.Run("a plaintext sensitive value never appears in the error", func(t *testing.T) {
		err := Decode([]byte(`{`+ws+`,`+art+`,"sensitive_variables":{"pw":"s3cr3t-value"}}`), new(Terraform))
		if err == nil || strings.Contains(err.Error(), "s3cr3t-value") {
			t.Fatalf("error = %v, want one that does not quote the value", err)
		}
	})
	t.Run("a full spec is accepted with its defaults", func(t *testing.T) {
		var s Terraform
		spec := `{` + ws + `,` + art + `,"path":"modules/db","variables":{"size":3,"tags":{"a":"b"},"name":"x"},"sensitive_variables":{"password":"vault://k8s/db/password"}}`
		if err := Decode([]byte(spec), &s); err != nil {
			t.Fatal(err)
		}
		if s.EffectiveAction() != TerraformApply || s.ConflictKey() != "tf/db" || s.Timeout() != DefaultTerraformTimeoutSeconds || s.EffectiveParallelism() != DefaultTerraformParallelism {
			t.Fatalf("defaults: %+v", s)
		}
	})
	t.Run("the kind is registered", func(t *testing.T) {
		if err := Validate(KindTerraform, []byte(`{`+ws+`,`+art+`}`)); err != nil {
			t.Fatalf("error = %v, want the spec accepted", err)
		}
	})
	t.Run("an oci module with vault credentials is accepted", func(t *testing.T) {
		for _, u := range []string{"oci://r.example.com:5000/modules/db:1.2.0", "oci://r.example.com/db@" + digest} {
			spec := `{` + ws + `,"url":"` + u + `","username":"robot","password":"vault://k8s/reg/password","approval":"destroy","approved_plan":"` + digest + `"}`
			if err := Decode([]byte(spec), new(Terraform)); err != nil {
				t.Fatalf("%s: %v", u, err)
			}
		}
	})
}

func TestTerraformHolds(t *testing.T) {
	changes := TerraformPlanSummary{Change: 1, HasChanges: true}
	destroys := TerraformPlanSummary{Add: 1, Destroy: 1, HasChanges: true}
	tests := []struct {
		name     string
		approval string
		plan     TerraformPlanSummary
		want     bool
	}{
		{"no policy holds nothing", "", destroys, false},
		{"never holds nothing", ApprovalNever, destroys, false},
		{"destroy holds a replacement", ApprovalDestroy, destroys, true},
		{"destroy lets an update through", ApprovalDestroy, changes, false},
		{"always holds any change", ApprovalAlways, changes, true},
		{"always lets an empty plan through", ApprovalAlways, TerraformPlanSummary{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Terraform{Approval: tt.approval}
			if got := s.Holds(tt.plan); got != tt.want {
				t.Fatalf("Holds = %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzValidateTerraformSpec(f *testing.F) {
	f.Add([]byte(`{"workspace":"db","url":"https://m.example.com/m.tgz","variables":{"a":[1,{"b":null}]},"sensitive_variables":{"pw":"vault://k8s/db/pw/v2"}}`))
	f.Add([]byte(`{"workspace":"db","action":"destroy","archive":"H4sI","path":"a/b","parallelism":2}`))
	f.Add([]byte(`{"workspace":"db","action":"plan","artifact":"sha256:` + strings.Repeat("0", 64) + `","timeout_seconds":60}`))
	f.Add([]byte(`{"workspace":"db","url":"oci://r.example.com:5000/m/db:1.0","username":"vault://k8s/r/u","password":"vault://k8s/r/p","plain_http":true,"approval":"destroy"}`))
	f.Fuzz(func(t *testing.T, spec []byte) {
		var s Terraform
		err := Decode(spec, &s)
		if err != nil {
			if !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("error %v does not wrap ErrInvalidSpec", err)
			}
			return
		}
		// An accepted spec re-encodes to one that is accepted, so the hub
		// and the agent never disagree about it.
		again, err := json.Marshal(&s)
		if err != nil {
			t.Fatal(err)
		}
		if err := Decode(again, new(Terraform)); err != nil {
			t.Fatalf("re-encoded spec %s rejected: %v", again, err)
		}
	})
}
