package terraform_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/executor/terraform"
)

func TestNewSweepsKilledRuns(t *testing.T) {
	root := t.TempDir()
	mk := func(name string, age time.Duration) string {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Join(dir, "module"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "outpost.tfplan"), []byte("plan"), 0o600); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-age)
		if err := os.Chtimes(dir, old, old); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	killed := mk("outpost-tf-123", 5*time.Hour)
	running := mk("outpost-tf-456", time.Hour)
	other := mk("someone-else", 5*time.Hour)
	var logs bytes.Buffer
	_, err := terraform.New(terraform.Options{
		TofuPath: "/nonexistent/tofu", Vault: fakeVault{}, WorkRoot: root,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		kept bool
	}{
		{"a run's directory older than the longest timeout is removed", killed, false},
		{"a run's directory younger than the longest timeout is kept", running, true},
		{"a directory that is no run's is kept", other, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := os.Stat(tt.dir)
			if kept := err == nil; kept != tt.kept {
				t.Fatalf("%s: stat = %v, want kept=%v", tt.dir, err, tt.kept)
			}
		})
	}
	if !bytes.Contains(logs.Bytes(), []byte("removed=1")) {
		t.Fatalf("logs lack the count of removed directories:\n%s", logs.String())
	}
}

func TestMemoryBacked(t *testing.T) {
	tests := []struct {
		name   string
		dir    string
		memory bool
	}{
		{"/dev/shm is in memory", "/dev/shm", true},
		{"/proc is not tmpfs or ramfs", "/proc", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := os.Stat(tt.dir); err != nil {
				t.Skipf("SKIPPING: %v", err)
			}
			got, err := terraform.MemoryBacked(tt.dir)
			if err != nil || got != tt.memory {
				t.Fatalf("MemoryBacked(%s) = %v, %v; want %v", tt.dir, got, err, tt.memory)
			}
		})
	}
	t.Run("a missing directory is an error", func(t *testing.T) {
		if _, err := terraform.MemoryBacked(filepath.Join(t.TempDir(), "nope")); err == nil {
			t.Fatal("MemoryBacked of a missing directory returned no error")
		}
	})
}
