package vault

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// echo resolves a reference to a marked copy of its text, so tests can see
// which references were resolved and where.
func echo(_ context.Context, ref Ref) (string, error) {
	return "<" + ref.String() + ">", nil
}

func TestExpand(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain text is returned unchanged", "hello $HOME ${HOME} {}", "hello $HOME ${HOME} {}"},
		{"a whole-value reference is replaced", "vault://local/db/pw", "<vault://local/db/pw>"},
		{"an embedded placeholder is replaced", "Bearer ${vault://local/api/token}", "Bearer <vault://local/api/token>"},
		{"several placeholders are replaced in order", `{"u":"${vault://local/db/user}","p":"${vault://local/db/pw/v2}"}`, `{"u":"<vault://local/db/user>","p":"<vault://local/db/pw/v2>"}`},
		{"a reference not at the start of text is left as text", "see vault://local/db/pw", "see vault://local/db/pw"},
		{"the empty string stays empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Expand(t.Context(), tt.in, echo)
			if err != nil {
				t.Fatalf("Expand(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("Expand(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestExpandRejectsMalformedPlaceholders(t *testing.T) {
	tests := []struct {
		name, in, reason string
	}{
		{"an unterminated placeholder is rejected", "Bearer ${vault://local/api/token", "not closed"},
		{"a placeholder with a single slash is rejected", "x ${vault:/local/api/token}", "must start with vault://"},
		{"a placeholder with a bad segment is rejected", "x ${vault://local/api/../token}", `".."`},
		{"a malformed whole-value reference is rejected", "vault://local/token", "want vault://"},
		{"a whole-value reference with spaces is rejected", " vault://local/api/token", "surrounding spaces"},
		{"a nested placeholder is rejected", "${vault://local/a/${vault://local/b/c}}", "want letters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			_, err := Expand(t.Context(), tt.in, func(context.Context, Ref) (string, error) {
				called = true
				return "", nil
			})
			if !errors.Is(err, ErrMalformedRef) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("Expand(%q) error = %v, want ErrMalformedRef saying %q", tt.in, err, tt.reason)
			}
			if called {
				t.Fatal("a reference was resolved although the value is malformed")
			}
			if _, err := Refs(tt.in); !errors.Is(err, ErrMalformedRef) {
				t.Fatalf("Refs(%q) error = %v, want ErrMalformedRef", tt.in, err)
			}
		})
	}
}

func TestExpandReturnsTheResolverError(t *testing.T) {
	boom := errors.New("boom")
	_, err := Expand(t.Context(), "a ${vault://local/a/b} c", func(context.Context, Ref) (string, error) {
		return "", boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error = %v, want the resolver's", err)
	}
}

func FuzzExpand(f *testing.F) {
	for _, s := range []string{
		"Bearer ${vault://local/api/token}", "vault://local/db/pw", "${vault:", "${vault://a/b/c}${vault://a/b/c/v1}",
		"x ${vault://local/a/b", "${}", "plain",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		calls := 0
		got, err := Expand(t.Context(), s, func(ctx context.Context, ref Ref) (string, error) {
			calls++
			return echo(ctx, ref)
		})
		refs, refsErr := Refs(s)
		if (err == nil) != (refsErr == nil) {
			t.Fatalf("Expand error %v but Refs error %v", err, refsErr)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformedRef) {
				t.Fatalf("error %v does not wrap ErrMalformedRef", err)
			}
			if calls != 0 {
				t.Fatalf("resolved %d references of a malformed value", calls)
			}
			return
		}
		if calls != len(refs) {
			t.Fatalf("resolved %d references, Refs found %d", calls, len(refs))
		}
		if !strings.Contains(s, "vault:") && got != s {
			t.Fatalf("text without references changed: %q -> %q", s, got)
		}
		for _, r := range refs {
			if !strings.Contains(got, "<"+r.String()+">") {
				t.Fatalf("reference %s not replaced in %q", r, got)
			}
		}
	})
}
