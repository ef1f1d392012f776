package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func newAuthority(t *testing.T, now func() time.Time) (*TokenAuthority, ed25519.PrivateKey) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewTokenAuthority(TokenOptions{Key: key, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return a, key
}

func TestIssuedTokenVerifies(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	a, _ := newAuthority(t, func() time.Time { return now })
	tok, exp, err := a.Issue("agt_1", "acme", "env_1")
	if err != nil {
		t.Fatal(err)
	}
	if got := exp.Sub(now); got != 15*time.Minute {
		t.Fatalf("token lives %v, want 15m", got)
	}
	c, err := a.Verify(tok)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if c.Subject != "agt_1" || c.Tenant != "acme" || c.Environment != "env_1" || !c.HasScope(ScopeTasks) {
		t.Fatalf("claims = %+v", c)
	}
}

func TestVerifyRefuses(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	a, key := newAuthority(t, func() time.Time { return now })
	pub := key.Public().(ed25519.PublicKey)
	valid := func() AgentClaims {
		return AgentClaims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: DefaultIssuer, Subject: "agt_1", Audience: jwt.ClaimStrings{DefaultAudience},
				ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)), IssuedAt: jwt.NewNumericDate(now),
			},
			Tenant: "acme", Environment: "env_1", Scopes: []string{ScopeTasks},
		}
	}
	sign := func(t *testing.T, c AgentClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)

	cases := []struct {
		name  string
		token func(t *testing.T) string
	}{
		{"a token with alg none", func(t *testing.T) string {
			s, err := jwt.NewWithClaims(jwt.SigningMethodNone, valid()).SignedString(jwt.UnsafeAllowNoneSignatureType)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"an HS256 token keyed with the public key", func(t *testing.T) string {
			s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, valid()).SignedString([]byte(pub))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"a token signed by another key", func(t *testing.T) string {
			s, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, valid()).SignedString(otherKey)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"a token for another audience", func(t *testing.T) string {
			c := valid()
			c.Audience = jwt.ClaimStrings{"someone-else"}
			return sign(t, c)
		}},
		{"a token from another issuer", func(t *testing.T) string {
			c := valid()
			c.Issuer = "evil-hub"
			return sign(t, c)
		}},
		{"a token without exp", func(t *testing.T) string {
			c := valid()
			c.ExpiresAt = nil
			return sign(t, c)
		}},
		{"an expired token", func(t *testing.T) string {
			c := valid()
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour))
			return sign(t, c)
		}},
		{"a token without an environment", func(t *testing.T) string {
			c := valid()
			c.Environment = ""
			return sign(t, c)
		}},
		{"a token over 8 KiB", func(t *testing.T) string {
			c := valid()
			c.Scopes = []string{strings.Repeat("x", MaxTokenBytes)}
			return sign(t, c)
		}},
		{"garbage", func(*testing.T) string { return "not.a.jwt" }},
	}
	for _, tc := range cases {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			_, err := a.Verify(tc.token(t))
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Verify() error = %v, want ErrInvalidToken", err)
			}
		})
	}
	t.Run("accepts the valid baseline", func(t *testing.T) {
		if _, err := a.Verify(sign(t, valid())); err != nil {
			t.Fatalf("baseline token refused: %v", err)
		}
	})
}

func FuzzVerify(f *testing.F) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	a, err := NewTokenAuthority(TokenOptions{Key: key, Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	tok, _, _ := a.Issue("agt", "t", "e")
	f.Add(tok)
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := a.Verify(s)
		if err == nil && s != tok {
			// Only tokens signed by key can verify; a mutation that still
			// verifies must carry the same claims.
			if c.Subject != "agt" {
				t.Fatalf("forged token verified: %q", s)
			}
		}
	})
}
