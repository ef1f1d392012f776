package hub

import (
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/outposthq/outpost/internal/auth"
)

func TestVerifiedTokens(t *testing.T) {
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	claims := auth.AgentClaims{RegisteredClaims: jwt.RegisteredClaims{Subject: "agt_1", ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute))}}
	tests := []struct {
		name string
		tok  string
		at   time.Time
		want bool
	}{
		{"the token that verified is found before it expires", "tok-a", now.Add(59 * time.Second), true},
		{"it is not found at its expiry", "tok-a", now.Add(time.Minute), false},
		{"any other token is not found", "tok-a.", now, false},
		{"a prefix of it is not found", "tok-", now, false},
	}
	c := newVerifiedTokens()
	c.put("tok-a", claims, now)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := c.get(tt.tok, tt.at)
			if ok != tt.want {
				t.Fatalf("get(%q) found = %v, want %v", tt.tok, ok, tt.want)
			}
			if ok && got.Subject != "agt_1" {
				t.Fatalf("get(%q) = %s", tt.tok, got.Subject)
			}
		})
	}
	t.Run("an expired token is not remembered", func(t *testing.T) {
		c := newVerifiedTokens()
		c.put("tok-b", claims, now.Add(time.Hour))
		if len(c.m) != 0 {
			t.Fatal("an expired token was stored")
		}
	})
	t.Run("a full cache drops expired tokens first, and stays bounded", func(t *testing.T) {
		c := newVerifiedTokens()
		for i := range maxVerifiedTokens {
			c.m[strconv.Itoa(i)] = claims
		}
		later := auth.AgentClaims{RegisteredClaims: jwt.RegisteredClaims{Subject: "agt_2", ExpiresAt: jwt.NewNumericDate(now.Add(2 * time.Hour))}}
		c.put("tok-c", later, now.Add(time.Hour))
		if len(c.m) != 1 {
			t.Fatalf("%d entries after the sweep, want 1", len(c.m))
		}
		c.put("tok-d", later, now.Add(time.Hour))
		if _, ok := c.get("tok-c", now.Add(time.Hour)); !ok {
			t.Fatal("a live token was dropped")
		}
	})
}
