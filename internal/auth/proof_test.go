package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
)

func TestProofs(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	nonce := make([]byte, NonceSize)
	_, _ = rand.Read(nonce)
	otherNonce := make([]byte, NonceSize)
	_, _ = rand.Read(otherNonce)

	enroll := SignEnroll(key, nonce)
	refresh := SignRefresh(key, nonce, "agt_1")

	if err := VerifyEnroll(pub, nonce, enroll); err != nil {
		t.Fatalf("valid enrollment proof refused: %v", err)
	}
	if err := VerifyRefresh(pub, nonce, refresh, "agt_1"); err != nil {
		t.Fatalf("valid refresh proof refused: %v", err)
	}
	cases := []struct {
		name string
		err  error
	}{
		{"an enrollment proof over another nonce", VerifyEnroll(pub, otherNonce, enroll)},
		{"an enrollment proof for another key", VerifyEnroll(otherPub, nonce, enroll)},
		{"a refresh proof used as an enrollment proof", VerifyEnroll(pub, nonce, refresh)},
		{"an enrollment proof used as a refresh proof", VerifyRefresh(pub, nonce, enroll, "agt_1")},
		{"a refresh proof for another agent", VerifyRefresh(pub, nonce, refresh, "agt_2")},
		{"a short nonce", VerifyEnroll(pub, nonce[:8], enroll)},
		{"a truncated signature", VerifyEnroll(pub, nonce, enroll[:10])},
	}
	for _, tc := range cases {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, ErrBadProof) {
				t.Fatalf("error = %v, want ErrBadProof", tc.err)
			}
		})
	}
}

func TestTokensAreRandomAndHashed(t *testing.T) {
	a, _ := NewToken(PrefixBootstrapToken)
	b, _ := NewToken(PrefixBootstrapToken)
	if a == b || len(a) < 30 {
		t.Fatalf("tokens %q and %q are not random enough", a, b)
	}
	if !EqualHash(HashToken(a), HashToken(a)) || EqualHash(HashToken(a), HashToken(b)) {
		t.Fatal("hash comparison is wrong")
	}
}
