package tofutest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outposthq/outpost/internal/tofutest"
)

func TestPathFollowsTheCache(t *testing.T) {
	t.Setenv("OUTPOST_CACHE", "/var/cache/outpost-x")
	if got, want := tofutest.Path(), "/var/cache/outpost-x/bin/tofu-"+tofutest.Version; got != want {
		t.Fatalf("Path = %s, want %s", got, want)
	}
}

func TestVersionMatchesTheBuildScript(t *testing.T) {
	script, err := os.ReadFile(filepath.Join("..", "..", "hack", "tofu.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(script), "\nTOFU_VERSION="+tofutest.Version+"\n") {
		t.Fatalf("hack/tofu.sh does not pin TOFU_VERSION=%s", tofutest.Version)
	}
}

func TestBinaryRunsThePinnedVersion(t *testing.T) {
	bin := tofutest.Binary(t, "the pinned version check")
	out, err := exec.CommandContext(t.Context(), bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(string(out), "\n"); first != "OpenTofu "+tofutest.Version {
		t.Fatalf("%s says %q, want OpenTofu %s", bin, first, tofutest.Version)
	}
}

func TestAttributesFindsTheFirstInstance(t *testing.T) {
	state := map[string]any{"resources": []any{
		map[string]any{"type": "terraform_data", "name": "other", "instances": []any{map[string]any{"attributes": map[string]any{"id": "o"}}}},
		map[string]any{"type": "terraform_data", "name": "db", "instances": []any{map[string]any{"attributes": map[string]any{"id": "d"}}}},
		map[string]any{"type": "terraform_data", "name": "empty", "instances": []any{}},
	}}
	if got := tofutest.Attributes(state, "terraform_data", "db"); got["id"] != "d" {
		t.Fatalf("Attributes(db) = %v", got)
	}
	for _, name := range []string{"empty", "missing"} {
		if got := tofutest.Attributes(state, "terraform_data", name); got != nil {
			t.Fatalf("Attributes(%s) = %v, want nil", name, got)
		}
	}
}
