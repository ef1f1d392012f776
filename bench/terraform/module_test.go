package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/taskspec"
	"github.com/outposthq/outpost/internal/tofutest"
)

func TestNewModuleMakesAValidTaskOfItsResources(t *testing.T) {
	for _, tc := range []struct {
		name      string
		index     int
		resources int
	}{
		{"one resource", 0, 1},
		{"the default five", 7, 5},
		{"many resources", 19, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := newModule(tc.index, tc.resources, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Count(m.Files["main.tf"], `resource "terraform_data"`); got != tc.resources {
				t.Errorf("main.tf declares %d terraform_data resources, want %d", got, tc.resources)
			}
			for name, body := range m.Files {
				if strings.Contains(body, "provisioner") || strings.Contains(body, "provider \"") {
					t.Errorf("%s has a provisioner or provider block; the module must run without either:\n%s", name, body)
				}
			}
			spec := taskspec.Terraform{Workspace: m.Workspace, Archive: m.Archive, Variables: m.Variables}
			if err := spec.Validate(); err != nil {
				t.Errorf("the agent's spec does not validate: %v", err)
			}
			var index int
			if err := json.Unmarshal(m.Variables["index"], &index); err != nil || index != tc.index {
				t.Errorf("variable index = %s, want %d", m.Variables["index"], tc.index)
			}
			files := unpack(t, m.Archive)
			if len(files) != len(m.Files) {
				t.Errorf("archive holds %d files, want %d", len(files), len(m.Files))
			}
			for name, body := range m.Files {
				if files[name] != body {
					t.Errorf("archive's %s differs from the module's", name)
				}
			}
			again, err := newModule(tc.index, tc.resources, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again.Archive, m.Archive) {
				t.Error("the same module packs to different bytes")
			}
		})
	}
}

func TestNewModuleRefusesNoResources(t *testing.T) {
	if _, err := newModule(0, 0, 0); err == nil {
		t.Error("newModule(0, 0, 0) succeeded, want an error")
	}
}

func TestModulesDifferOnlyInTheirVariablesAndWorkspace(t *testing.T) {
	a, err := newModule(1, 5, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newModule(2, 5, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a.Workspace == b.Workspace {
		t.Errorf("both modules use workspace %s", a.Workspace)
	}
	if !bytes.Equal(a.Archive, b.Archive) {
		t.Error("modules 1 and 2 pack differently; only their variables should differ")
	}
	if string(a.Variables["name"]) == string(b.Variables["name"]) {
		t.Errorf("both modules are named %s", a.Variables["name"])
	}
}

// TestModuleValidatesWithTheCLI runs `tofu init -backend=false` and `tofu
// validate` on a module written for the CLI, when hack/tofu.sh has built
// the binary.
func TestModuleValidatesWithTheCLI(t *testing.T) {
	tofu := tofutest.Path()
	if _, err := os.Stat(tofu); err != nil {
		t.Skipf("no OpenTofu at %s (hack/tofu.sh builds it)", tofu)
	}
	for _, latency := range []time.Duration{0, 250 * time.Millisecond} {
		m, err := newModule(3, 5, latency)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "module")
		if err := m.writeDir(dir, nil); err != nil {
			t.Fatal(err)
		}
		home := t.TempDir()
		for _, args := range [][]string{{"init", "-backend=false", "-input=false"}, {"validate"}} {
			cmd := exec.CommandContext(t.Context(), tofu, args...)
			cmd.Dir = dir
			cmd.Env = []string{"HOME=" + home, "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1", "PATH=" + os.Getenv("PATH")}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("latency %v: tofu %s: %v\n%s", latency, strings.Join(args, " "), err, out)
			}
		}
	}
}

func unpack(t *testing.T, archive []byte) map[string]string {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = string(body)
	}
}
