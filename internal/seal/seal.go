package seal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Caps on what one Sealed value holds.
const (
	// MaxValuesSize is the most plaintext bytes, all values together.
	MaxValuesSize = 1 << 20
	// MaxKeys is the most keys in one sealed value.
	MaxKeys = 256
	// maxEnvelope bounds the decrypted envelope: base64 values plus names
	// and JSON punctuation.
	maxEnvelope = MaxValuesSize/3*4 + 8 + MaxKeys*(validation.DNS1123SubdomainMaxLength+8) + 4096
	// envelopeVersion is the envelope format.
	envelopeVersion = 1
)

// Sealed is a secret's values encrypted to one environment's key. Its
// fields are metadata in the clear; Ciphertext is an age file whose
// plaintext envelope repeats Env, Name and KeyVersion.
type Sealed struct {
	// Env is the environment ID the value was sealed for.
	Env string `json:"env"`
	// Name is the secret's name.
	Name string `json:"name"`
	// KeyVersion is the version of the key it was sealed to.
	KeyVersion int `json:"keyVersion"`
	// Fingerprint is the Fingerprint of that key's recipient.
	Fingerprint string `json:"fingerprint"`
	// Ciphertext is the age-encrypted envelope.
	Ciphertext []byte `json:"ciphertext"`
}

// envelope is the plaintext inside Ciphertext.
type envelope struct {
	V          int               `json:"v"`
	Env        string            `json:"env"`
	Name       string            `json:"name"`
	KeyVersion int               `json:"keyVersion"`
	Data       map[string][]byte `json:"data"`
}

// Seal encrypts values, the data of the secret name, to pub. Keys must be
// valid Kubernetes Secret data keys; at most MaxKeys of them and
// MaxValuesSize bytes in total. values is not modified.
func Seal(pub PublicKey, name string, values map[string][]byte) (*Sealed, error) {
	if err := pub.Validate(); err != nil {
		return nil, err
	}
	if err := validateName(name); err != nil {
		return nil, err
	}
	if err := validateValues(values); err != nil {
		return nil, err
	}
	recipient, err := age.ParseX25519Recipient(pub.Recipient)
	if err != nil {
		return nil, fmt.Errorf("%w: recipient: %w", ErrInvalidKey, err)
	}
	plain, err := json.Marshal(envelope{V: envelopeVersion, Env: pub.Env, Name: name, KeyVersion: pub.Version, Data: values})
	if err != nil {
		return nil, fmt.Errorf("seal: encode envelope: %w", err)
	}
	defer Wipe(plain)
	var out bytes.Buffer
	w, err := age.Encrypt(&out, recipient)
	if err != nil {
		return nil, fmt.Errorf("seal: encrypt: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, fmt.Errorf("seal: encrypt: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("seal: encrypt: %w", err)
	}
	return &Sealed{Env: pub.Env, Name: name, KeyVersion: pub.Version, Fingerprint: pub.Fingerprint, Ciphertext: out.Bytes()}, nil
}

// Open decrypts s, which must have been sealed for the secret name of the
// environment env, with the key of its version in kr. It fails with
// ErrWrongEnvironment for another environment's value or keyring,
// ErrUnknownKey for a version kr does not hold (or no longer holds), and
// ErrTampered for changed bytes or a value moved from another secret.
//
// The returned values are plaintext secrets: the caller must Wipe each of
// them as soon as it is done with them.
func Open(kr *Keyring, s *Sealed, env, name string) (map[string][]byte, error) {
	if kr == nil || s == nil {
		return nil, fmt.Errorf("%w: nothing to open", ErrTampered)
	}
	if kr.Env() != env {
		return nil, fmt.Errorf("%w: the keyring is %s's, not %s's", ErrWrongEnvironment, kr.Env(), env)
	}
	if s.Env != env {
		return nil, fmt.Errorf("%w: value sealed for %q, not %q", ErrWrongEnvironment, s.Env, env)
	}
	if s.Name != name {
		return nil, fmt.Errorf("%w: value sealed for secret %q, not %q", ErrTampered, s.Name, name)
	}
	key, err := kr.Key(s.KeyVersion)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	if key.pub.Fingerprint != s.Fingerprint {
		return nil, fmt.Errorf("%w: %s was sealed to key %s, not version %d's %s", ErrUnknownKey, name, s.Fingerprint, s.KeyVersion, key.pub.Fingerprint)
	}
	r, err := age.Decrypt(bytes.NewReader(s.Ciphertext), key.id)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", ErrTampered, name, err)
	}
	// The plaintext is shorter than the ciphertext, so one buffer of that
	// size (bounded) receives it all and no grown copy is left unwiped.
	buf := make([]byte, min(len(s.Ciphertext), maxEnvelope+1))
	defer Wipe(buf)
	n, err := io.ReadFull(r, buf)
	switch {
	case err == nil:
		return nil, fmt.Errorf("%w: open %s: envelope larger than %d bytes", ErrTampered, name, maxEnvelope)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
	default:
		return nil, fmt.Errorf("%w: open %s: %w", ErrTampered, name, err)
	}
	var env0 envelope
	if err := json.Unmarshal(buf[:n], &env0); err != nil {
		return nil, fmt.Errorf("%w: open %s: envelope: %w", ErrTampered, name, err)
	}
	if env0.V != envelopeVersion || env0.Env != s.Env || env0.Name != s.Name || env0.KeyVersion != s.KeyVersion {
		wipeValues(env0.Data)
		return nil, fmt.Errorf("%w: open %s: the envelope names another environment, secret or key version than the sealed value", ErrTampered, name)
	}
	if err := validateValues(env0.Data); err != nil {
		wipeValues(env0.Data)
		return nil, fmt.Errorf("%w: open %s: %w", ErrTampered, name, err)
	}
	if env0.Data == nil {
		env0.Data = map[string][]byte{}
	}
	return env0.Data, nil
}

// Wipe zeroes b. Use it on every value Open returns once it is written
// where it belongs.
func Wipe(b []byte) {
	clear(b)
}

func wipeValues(values map[string][]byte) {
	for _, v := range values {
		Wipe(v)
	}
}

func validateName(name string) error {
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fmt.Errorf("%w: secret name %q: %s", ErrInvalidKey, name, errs[0])
	}
	return nil
}

func validateValues(values map[string][]byte) error {
	if len(values) > MaxKeys {
		return fmt.Errorf("%w: %d keys, at most %d", ErrInvalidValues, len(values), MaxKeys)
	}
	total := 0
	for k, v := range values {
		if errs := validation.IsConfigMapKey(k); len(errs) > 0 {
			return fmt.Errorf("%w: key %q: %s", ErrInvalidValues, k, errs[0])
		}
		total += len(v)
	}
	if total > MaxValuesSize {
		return fmt.Errorf("%w: %d bytes of values, at most %d", ErrInvalidValues, total, MaxValuesSize)
	}
	return nil
}
