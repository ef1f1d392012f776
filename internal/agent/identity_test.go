package agent

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestFileIdentity(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	dir := t.TempDir()
	f := FileIdentity{Path: filepath.Join(dir, "sub", "identity.json")}

	t.Run("nothing stored reads as ErrNoIdentity", func(t *testing.T) {
		if _, err := f.Load(t.Context()); !errors.Is(err, ErrNoIdentity) {
			t.Fatalf("Load() = %v", err)
		}
	})
	t.Run("a saved identity loads back and is readable by its owner only", func(t *testing.T) {
		if err := f.Save(t.Context(), Identity{AgentID: "agt_1", Environment: "acme/prod", Key: key}); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(f.Path)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v, %v", st.Mode().Perm(), err)
		}
		id, err := f.Load(t.Context())
		if err != nil || id.AgentID != "agt_1" || id.Environment != "acme/prod" || !id.Key.Equal(key) {
			t.Fatalf("Load() = %+v, %v", id, err)
		}
	})
	t.Run("a group- or world-readable file is refused", func(t *testing.T) {
		if err := os.Chmod(f.Path, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Load(t.Context()); err == nil {
			t.Fatal("world-readable identity accepted")
		}
	})
	t.Run("a truncated file is refused with advice", func(t *testing.T) {
		p := filepath.Join(dir, "broken.json")
		if err := os.WriteFile(p, []byte(`{"agent_id":"agt_1"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := (FileIdentity{Path: p}).Load(t.Context()); err == nil {
			t.Fatal("incomplete identity accepted")
		}
	})
}
