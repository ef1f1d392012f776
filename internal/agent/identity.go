package agent

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
)

// ErrNoIdentity means the agent has not enrolled yet.
var ErrNoIdentity = errors.New("no agent identity stored")

// Identity is what an enrolled agent keeps: its id, the environment it
// joined and its private key.
type Identity struct {
	AgentID     string
	Environment string
	Key         ed25519.PrivateKey
}

// String describes the identity without its key, so that printing one
// with fmt (%v, %+v, %s) never shows the private key.
func (id Identity) String() string {
	return fmt.Sprintf("agent %s in %s", id.AgentID, id.Environment)
}

// GoString is String for %#v.
func (id Identity) GoString() string { return id.String() }

// LogValue logs the identity without its key.
func (id Identity) LogValue() slog.Value {
	return slog.GroupValue(slog.String("agent_id", id.AgentID), slog.String("environment", id.Environment))
}

// IdentityStore keeps the identity across restarts. Load returns
// ErrNoIdentity when nothing is stored.
type IdentityStore interface {
	Load(ctx context.Context) (Identity, error)
	Save(ctx context.Context, id Identity) error
}

// FileIdentity keeps the identity in a file readable only by its owner.
type FileIdentity struct {
	Path string
}

var _ IdentityStore = FileIdentity{}

type identityFile struct {
	AgentID     string `json:"agent_id"`
	Environment string `json:"environment"`
	// Seed is the Ed25519 private key seed.
	Seed []byte `json:"ed25519_seed"`
}

const maxIdentityFileBytes = 64 << 10

// Load reads the identity file.
func (f FileIdentity) Load(context.Context) (Identity, error) {
	fh, err := os.Open(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return Identity{}, ErrNoIdentity
	}
	if err != nil {
		return Identity{}, fmt.Errorf("agent: identity: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return Identity{}, fmt.Errorf("agent: identity: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return Identity{}, fmt.Errorf("agent: identity file %s is readable by others (mode %v); run chmod 600 on it", f.Path, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(fh, maxIdentityFileBytes+1))
	if err != nil {
		return Identity{}, fmt.Errorf("agent: identity: %w", err)
	}
	if len(b) > maxIdentityFileBytes {
		return Identity{}, fmt.Errorf("agent: identity file %s is larger than %d bytes", f.Path, maxIdentityFileBytes)
	}
	var v identityFile
	if err := json.Unmarshal(b, &v); err != nil {
		return Identity{}, fmt.Errorf("agent: identity file %s: %w", f.Path, err)
	}
	if v.AgentID == "" || len(v.Seed) != ed25519.SeedSize {
		return Identity{}, fmt.Errorf("agent: identity file %s is incomplete; delete it and enroll again with a new bootstrap token", f.Path)
	}
	return Identity{AgentID: v.AgentID, Environment: v.Environment, Key: ed25519.NewKeyFromSeed(v.Seed)}, nil
}

// Save writes the identity atomically with mode 0600.
func (f FileIdentity) Save(_ context.Context, id Identity) error {
	b, err := json.Marshal(identityFile{AgentID: id.AgentID, Environment: id.Environment, Seed: id.Key.Seed()})
	if err != nil {
		return fmt.Errorf("agent: identity: %w", err)
	}
	dir := filepath.Dir(f.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("agent: identity: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".identity-*")
	if err != nil {
		return fmt.Errorf("agent: identity: %w", err)
	}
	defer os.Remove(tmp.Name())
	// The file is private before the key is written, and on disk before it
	// replaces the old one, so a crash leaves either identity whole.
	write := func() error {
		if err := tmp.Chmod(0o600); err != nil {
			return err
		}
		if _, err := tmp.Write(b); err != nil {
			return err
		}
		return tmp.Sync()
	}
	if err := write(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("agent: identity: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("agent: identity: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.Path); err != nil {
		return fmt.Errorf("agent: identity: %w", err)
	}
	return nil
}
