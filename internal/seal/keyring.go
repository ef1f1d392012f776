package seal

import (
	"fmt"
	"slices"
	"sync"
)

// Keyring holds the live key versions of one environment. Values are
// sealed to the newest version; every version still held opens what was
// sealed to it, until it is retired. A Keyring is safe for concurrent use.
type Keyring struct {
	env string

	mu   sync.RWMutex
	keys []*KeyPair // ascending by version, never empty
}

// NewKeyring returns a keyring holding keys, which must be non-empty,
// belong to one environment and have distinct versions.
func NewKeyring(keys ...*KeyPair) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: a keyring needs at least one key", ErrInvalidKey)
	}
	sorted := slices.Clone(keys)
	slices.SortFunc(sorted, func(a, b *KeyPair) int { return a.version - b.version })
	env := sorted[0].env
	for i, k := range sorted {
		if k == nil || k.id == nil {
			return nil, fmt.Errorf("%w: nil key", ErrInvalidKey)
		}
		if k.env != env {
			return nil, fmt.Errorf("%w: key version %d belongs to %q, not %q", ErrWrongEnvironment, k.version, k.env, env)
		}
		if i > 0 && sorted[i-1].version == k.version {
			return nil, fmt.Errorf("%w: key version %d appears twice", ErrInvalidKey, k.version)
		}
	}
	return &Keyring{env: env, keys: sorted}, nil
}

// Env returns the environment ID the keyring belongs to.
func (r *Keyring) Env() string { return r.env }

// Newest returns the newest key, the one new values are sealed to.
func (r *Keyring) Newest() *KeyPair {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.keys[len(r.keys)-1]
}

// Versions returns the versions held, ascending.
func (r *Keyring) Versions() []int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]int, len(r.keys))
	for i, k := range r.keys {
		out[i] = k.version
	}
	return out
}

// Key returns the key of a version, or ErrUnknownKey.
func (r *Keyring) Key(version int) (*KeyPair, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, k := range r.keys {
		if k.version == version {
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w: %s holds no key version %d", ErrUnknownKey, r.env, version)
}

// Rotate generates a key one version newer than the newest and adds it.
func (r *Keyring) Rotate() (*KeyPair, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k, err := GenerateKey(r.env, r.keys[len(r.keys)-1].version+1)
	if err != nil {
		return nil, err
	}
	r.keys = append(r.keys, k)
	return k, nil
}

// Retire removes a version, which then opens nothing. The newest version
// cannot be retired: rotate first, re-seal, then retire the old one.
func (r *Keyring) Retire(version int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := slices.IndexFunc(r.keys, func(k *KeyPair) bool { return k.version == version })
	if i < 0 {
		return fmt.Errorf("%w: %s holds no key version %d", ErrUnknownKey, r.env, version)
	}
	if i == len(r.keys)-1 {
		return fmt.Errorf("%w: version %d is the newest key of %s; rotate before retiring it", ErrInvalidKey, version, r.env)
	}
	r.keys = slices.Delete(r.keys, i, i+1)
	return nil
}

// String describes the keyring without any private key.
func (r *Keyring) String() string {
	return fmt.Sprintf("seal.Keyring{env=%s versions=%v}", r.env, r.Versions())
}
