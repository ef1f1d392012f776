package seal

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"

	"filippo.io/age"
)

// fingerprintLen is the number of hex characters of a fingerprint.
const fingerprintLen = 16

// KeyPair is one version of an environment's age X25519 key. Its private
// half never appears in String, LogValue, any fmt verb or an error; only
// EncodeKeyring exports it, for the agent's key store.
type KeyPair struct {
	env     string
	version int
	id      *age.X25519Identity
	pub     PublicKey
}

// PublicKey is the public half of a KeyPair: what the hub stores and what
// the CLI and console seal values to.
type PublicKey struct {
	// Env is the environment ID, "tenant/env".
	Env string `json:"env"`
	// Version is the key version, starting at 1.
	Version int `json:"version"`
	// Recipient is the age X25519 recipient ("age1…").
	Recipient string `json:"recipient"`
	// Fingerprint is Fingerprint(Recipient).
	Fingerprint string `json:"fingerprint"`
}

// GenerateKey generates a new key pair of the given version for env.
func GenerateKey(env string, version int) (*KeyPair, error) {
	if err := validateEnv(env); err != nil {
		return nil, err
	}
	if version < 1 {
		return nil, fmt.Errorf("%w: key version %d is not positive", ErrInvalidKey, version)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("seal: generate key: %w", err)
	}
	return newKeyPair(env, version, id), nil
}

func newKeyPair(env string, version int, id *age.X25519Identity) *KeyPair {
	recipient := id.Recipient().String()
	return &KeyPair{env: env, version: version, id: id, pub: PublicKey{
		Env: env, Version: version, Recipient: recipient, Fingerprint: Fingerprint(recipient),
	}}
}

// Fingerprint returns the short hex SHA-256 of an age recipient string, by
// which a sealed value names the key it was sealed to.
func Fingerprint(recipient string) string {
	sum := sha256.Sum256([]byte(recipient))
	return hex.EncodeToString(sum[:])[:fingerprintLen]
}

// Env returns the environment ID the key belongs to.
func (k *KeyPair) Env() string { return k.env }

// Version returns the key version.
func (k *KeyPair) Version() int { return k.version }

// Public returns the public half.
func (k *KeyPair) Public() PublicKey { return k.pub }

// String describes the key without its private half.
func (k KeyPair) String() string {
	return fmt.Sprintf("seal.KeyPair{env=%s version=%d fingerprint=%s}", k.env, k.version, k.pub.Fingerprint)
}

// GoString is String, so %#v hides the private half too.
func (k KeyPair) GoString() string { return k.String() }

// Format prints String for every verb, so no fmt verb reaches the private
// half.
func (k KeyPair) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// LogValue logs the key without its private half.
func (k KeyPair) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("env", k.env),
		slog.Int("version", k.version),
		slog.String("fingerprint", k.pub.Fingerprint),
	)
}

// Validate reports whether p is well formed: a valid environment ID,
// a positive version and a parsable recipient whose fingerprint matches.
func (p PublicKey) Validate() error {
	if err := validateEnv(p.Env); err != nil {
		return err
	}
	if p.Version < 1 {
		return fmt.Errorf("%w: key version %d is not positive", ErrInvalidKey, p.Version)
	}
	if _, err := age.ParseX25519Recipient(p.Recipient); err != nil {
		return fmt.Errorf("%w: recipient: %w", ErrInvalidKey, err)
	}
	if Fingerprint(p.Recipient) != p.Fingerprint {
		return fmt.Errorf("%w: fingerprint %q does not match the recipient", ErrInvalidKey, p.Fingerprint)
	}
	return nil
}

// validateEnv checks an environment ID: "tenant/env", both parts non-empty.
func validateEnv(env string) error {
	tenant, name, ok := strings.Cut(env, "/")
	if !ok || tenant == "" || name == "" || strings.Contains(name, "/") || len(env) > 253 {
		return fmt.Errorf("%w: environment ID %q is not tenant/env", ErrInvalidKey, env)
	}
	return nil
}
