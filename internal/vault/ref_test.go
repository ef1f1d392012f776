package vault

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Ref
	}{
		{"a key under one path segment parses", "vault://local/db/password", Ref{Provider: "local", Path: "db", Key: "password"}},
		{"a key under nested path segments parses", "vault://local/db/creds/password", Ref{Provider: "local", Path: "db/creds", Key: "password"}},
		{"a trailing version is split off", "vault://aws-sm/prod/api/token/v12", Ref{Provider: "aws-sm", Path: "prod/api", Key: "token", Version: 12}},
		{"a key that looks like a version needs three segments to be a version", "vault://local/app/v2", Ref{Provider: "local", Path: "app", Key: "v2"}},
		{"a version-like key is kept when followed by a version", "vault://local/app/v2/v1", Ref{Provider: "local", Path: "app", Key: "v2", Version: 1}},
		{"segments allow dots underscores and dashes", "vault://local/a.b/c_d/E-f.txt", Ref{Provider: "local", Path: "a.b/c_d", Key: "E-f.txt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRef(tt.in)
			if err != nil {
				t.Fatalf("ParseRef(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseRef(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.String() != tt.in {
				t.Fatalf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func TestParseRefRejects(t *testing.T) {
	tests := []struct {
		name, in, reason string
	}{
		{"a missing scheme is rejected", "local/db/password", "must start with vault://"},
		{"an uppercase scheme is rejected", "VAULT://local/db/password", "must start with vault://"},
		{"a reference without a path is rejected", "vault://local/password", "want vault://"},
		{"an empty provider is rejected", "vault:///db/password", "provider is empty"},
		{"an uppercase provider is rejected", "vault://Local/db/password", "provider \"Local\""},
		{"a provider starting with a digit is rejected", "vault://1p/db/password", "provider \"1p\""},
		{"an empty path segment is rejected", "vault://local/db//password", "empty segment"},
		{"a trailing slash is rejected", "vault://local/db/password/", "empty segment"},
		{"a dot-dot segment is rejected", "vault://local/db/../password", `segment ".."`},
		{"a dot segment is rejected", "vault://local/./db/password", `segment "."`},
		{"a dot-dot key is rejected", "vault://local/db/..", `key segment ".."`},
		{"a space in a segment is rejected", "vault://local/db/pass word", "want letters"},
		{"a placeholder brace is rejected", "vault://local/db/password}", "want letters"},
		{"a query string is rejected", "vault://local/db/password?x=1", "want letters"},
		{"a version with a leading zero is rejected", "vault://local/db/password/v01", "leading zeros"},
		{"version zero is rejected", "vault://local/db/password/v0", "leading zeros"},
		{"a huge version is rejected", "vault://local/db/password/v99999999999", "too large"},
		{"an overlong reference is rejected", "vault://local/db/" + strings.Repeat("a", MaxRefLength), "longer than"},
		{"an overlong segment is rejected", "vault://local/db/" + strings.Repeat("a", MaxSegmentLength+1), "segment longer"},
		{"too many path segments are rejected", "vault://local/" + strings.Repeat("a/", MaxPathSegments+1) + "k", "path segments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRef(tt.in)
			if !errors.Is(err, ErrMalformedRef) {
				t.Fatalf("ParseRef(%q) error = %v, want ErrMalformedRef", tt.in, err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error %q does not say %q", err, tt.reason)
			}
		})
	}
}

func FuzzParseRef(f *testing.F) {
	for _, s := range []string{
		"vault://local/db/creds/password", "vault://local/app/v2/v1", "vault://x/a/b/v3",
		"vault://local/../x", "vault:///a/b", "vault://local/a/b/v0", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := ParseRef(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedRef) {
				t.Fatalf("error %v does not wrap ErrMalformedRef", err)
			}
			return
		}
		if len(s) > MaxRefLength {
			t.Fatalf("accepted a reference of %d bytes", len(s))
		}
		if ref.String() != s {
			t.Fatalf("String() = %q, want the input %q", ref.String(), s)
		}
		again, err := ParseRef(ref.String())
		if err != nil || again != ref {
			t.Fatalf("round trip of %q gave %+v, %v", s, again, err)
		}
		for _, seg := range strings.Split(ref.Path+"/"+ref.Key, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("accepted segment %q in %q", seg, s)
			}
		}
	})
}
