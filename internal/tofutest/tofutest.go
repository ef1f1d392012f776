// Package tofutest finds the pinned OpenTofu CLI that hack/tofu.sh builds
// from the Go module proxy (`make tofu`; `make test` builds it first), for
// tests, benchmarks and the demo, as kubetest finds kube-apiserver.
package tofutest

import (
	"os"
	"path/filepath"
	"testing"
)

// Version is the OpenTofu release hack/tofu.sh builds; keep the two equal.
const Version = "v1.11.6"

// Path returns where hack/tofu.sh puts the binary:
// $OUTPOST_CACHE/bin/tofu-<Version>, the cache defaulting to
// ~/.cache/outpost. It does not check that the file exists.
func Path() string {
	cache := os.Getenv("OUTPOST_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.Getenv("HOME")
		}
		cache = filepath.Join(home, ".cache", "outpost")
	}
	return filepath.Join(cache, "bin", "tofu-"+Version)
}

// Binary returns Path for a test that runs OpenTofu. Where the binary is
// missing the test is skipped loudly, naming what, except under CI=true,
// where that is a failure.
func Binary(t testing.TB, what string) string {
	t.Helper()
	p := Path()
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no OpenTofu binary at %s under CI=true; `make test` builds it with hack/tofu.sh", p)
		}
		t.Skipf("SKIPPING %s: no OpenTofu binary at %s; run hack/tofu.sh (make tofu) to build it", what, p)
	}
	return p
}
