package seal

import (
	"fmt"
	"strconv"
	"strings"

	"filippo.io/age"
)

// Data keys of an encoded keyring.
const (
	// DataEnvironment holds the environment ID.
	DataEnvironment = "environment"
	// dataKeyPrefix followed by the version holds that version's private
	// key in age's text form.
	dataKeyPrefix = "key-"
)

// EncodeKeyring returns r as Kubernetes Secret data: the environment ID
// under DataEnvironment and each version's private key under "key-<N>".
// The result holds private keys: store it only where the agent keeps its
// own secrets, and Wipe its values when done.
func EncodeKeyring(r *Keyring) map[string][]byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	data := map[string][]byte{DataEnvironment: []byte(r.env)}
	for _, k := range r.keys {
		data[dataKeyPrefix+strconv.Itoa(k.version)] = []byte(k.id.String())
	}
	return data
}

// DecodeKeyring parses data written by EncodeKeyring.
func DecodeKeyring(data map[string][]byte) (*Keyring, error) {
	env := string(data[DataEnvironment])
	if err := validateEnv(env); err != nil {
		return nil, fmt.Errorf("decode keyring: %w", err)
	}
	var keys []*KeyPair
	for name, value := range data {
		if name == DataEnvironment {
			continue
		}
		v, ok := strings.CutPrefix(name, dataKeyPrefix)
		version, err := strconv.Atoi(v)
		if !ok || err != nil || version < 1 || strconv.Itoa(version) != v {
			return nil, fmt.Errorf("%w: decode keyring: unexpected data key %q", ErrInvalidKey, name)
		}
		id, err := age.ParseX25519Identity(strings.TrimSpace(string(value)))
		if err != nil {
			// age's message may quote part of the key, so it is left out.
			return nil, fmt.Errorf("%w: decode keyring: version %d is not an age X25519 private key", ErrInvalidKey, version)
		}
		keys = append(keys, newKeyPair(env, version, id))
	}
	r, err := NewKeyring(keys...)
	if err != nil {
		return nil, fmt.Errorf("decode keyring of %s: %w", env, err)
	}
	return r, nil
}
