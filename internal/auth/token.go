package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"strings"
)

// Token prefixes make a leaked token recognisable by secret scanners.
const (
	PrefixAPIToken       = "opa_"
	PrefixBootstrapToken = "opb_"
)

// MaxTokenBytes caps any token accepted from the network.
const MaxTokenBytes = 8 << 10

var tokenEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewToken returns a random token with the given prefix and 160 bits of
// entropy.
func NewToken(prefix string) (string, error) {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("auth: new token: %w", err)
	}
	return prefix + strings.ToLower(tokenEncoding.EncodeToString(b[:])), nil
}

// HashToken is how tokens are kept at rest.
func HashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// EqualHash compares two hashes in constant time.
func EqualHash(a, b []byte) bool {
	return subtle.ConstantTimeCompare(a, b) == 1
}

// NewID returns a random identifier with a prefix, for rows the hub creates.
func NewID(prefix string) string {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand never fails on supported platforms (Go 1.24+ panics
		// internally instead of returning an error).
		panic(err)
	}
	return prefix + strings.ToLower(tokenEncoding.EncodeToString(b[:]))
}
