package agent

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

func TestIdentityNeverPrintsItsKey(t *testing.T) {
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	id := Identity{AgentID: "agt_1", Environment: "acme/prod", Key: key}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("enrolled", "identity", id)
	printed := []string{fmt.Sprint(id), fmt.Sprintf("%+v", id), fmt.Sprintf("%#v", id), fmt.Sprintf("%v", &id), logged.String()}
	for _, form := range []string{string(key), hex.EncodeToString(key.Seed()), base64.StdEncoding.EncodeToString(key), decimal(key.Seed()[:12])} {
		for _, p := range printed {
			if strings.Contains(p, form) {
				t.Fatalf("the private key appears in %q", p)
			}
		}
	}
	if !strings.Contains(logged.String(), "agt_1") || !strings.Contains(fmt.Sprint(id), "acme/prod") {
		t.Fatalf("the identity is not described: %q / %q", logged.String(), fmt.Sprint(id))
	}
}

// decimal renders b as fmt's %v does ("12 34 56"), without the brackets.
func decimal(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = strconv.Itoa(int(c))
	}
	return strings.Join(parts, " ")
}
