package taskspec

import (
	"errors"
	"strings"
	"testing"
)

func TestSecretValidate(t *testing.T) {
	const sealed = `"sealed":{"env":"acme/prod","name":"api","keyVersion":1,"fingerprint":"0123456789abcdef","ciphertext":"YWdl"}`
	tests := []struct {
		name, spec, reason string
	}{
		{"a name is required", `{"namespace":"app",` + sealed + `}`, "name: is required"},
		{"an upper-case name is rejected", `{"name":"API","namespace":"app",` + sealed + `}`, `name "API"`},
		{"a namespace is required", `{"name":"api",` + sealed + `}`, "namespace: is required"},
		{"a bad namespace is rejected", `{"name":"api","namespace":"a.b",` + sealed + `}`, `namespace "a.b"`},
		{"a sealed value is required", `{"name":"api","namespace":"app"}`, "sealed: is required"},
		{"a sealed value with delete is rejected", `{"name":"api","namespace":"app","delete":true,` + sealed + `}`, "sealed: not allowed with delete"},
		{"adopt with delete is rejected", `{"name":"api","namespace":"app","delete":true,"adopt":true}`, "adopt: not allowed with delete"},
		{"a value sealed for another secret is rejected", `{"name":"web","namespace":"app",` + sealed + `}`, `sealed.name "api"`},
		{"a missing environment is rejected", `{"name":"api","namespace":"app","sealed":{"name":"api","keyVersion":1,"fingerprint":"ab","ciphertext":"YWdl"}}`, "sealed.env: is required"},
		{"a zero key version is rejected", `{"name":"api","namespace":"app","sealed":{"env":"a/b","name":"api","fingerprint":"ab","ciphertext":"YWdl"}}`, "sealed.keyVersion 0"},
		{"a non-hex fingerprint is rejected", `{"name":"api","namespace":"app","sealed":{"env":"a/b","name":"api","keyVersion":1,"fingerprint":"XY","ciphertext":"YWdl"}}`, `sealed.fingerprint "XY"`},
		{"an empty ciphertext is rejected", `{"name":"api","namespace":"app","sealed":{"env":"a/b","name":"api","keyVersion":1,"fingerprint":"ab"}}`, "sealed.ciphertext: is required"},
		{"plaintext data is rejected as an unknown field", `{"name":"api","namespace":"app","data":{"k":"dg=="},` + sealed + `}`, `unknown field "data"`},
		{"plaintext stringData is rejected as an unknown field", `{"name":"api","namespace":"app","stringData":{"k":"v"},` + sealed + `}`, `unknown field "stringData"`},
		{"an unknown field of the sealed value is rejected", `{"name":"api","namespace":"app","sealed":{"env":"a/b","name":"api","keyVersion":1,"fingerprint":"ab","ciphertext":"YWdl","plain":"x"}}`, `unknown field "plain"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(KindSecret, []byte(tt.spec))
			if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error = %v, want ErrInvalidSpec saying %q", err, tt.reason)
			}
		})
	}
	t.Run("a sealed value is accepted", func(t *testing.T) {
		var s Secret
		if err := Decode([]byte(`{"name":"api","namespace":"app","adopt":true,`+sealed+`}`), &s); err != nil {
			t.Fatal(err)
		}
		if s.Sealed.KeyVersion != 1 || string(s.Sealed.Ciphertext) != "age" || !s.Adopt {
			t.Fatalf("decoded %+v", s)
		}
		if got := s.ConflictKey(); got != "secret/app/api" {
			t.Fatalf("ConflictKey = %q", got)
		}
	})
	t.Run("a delete without a sealed value is accepted", func(t *testing.T) {
		if err := Validate(KindSecret, []byte(`{"name":"api","namespace":"app","delete":true}`)); err != nil {
			t.Fatal(err)
		}
	})
}
