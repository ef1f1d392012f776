package kubetest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// ErrNoAssets means the kube-apiserver and etcd binaries are not built.
var ErrNoAssets = errors.New("kubetest: kube-apiserver and etcd are not built; run hack/testbins.sh (or make test, which builds them)")

// AssetsDir returns the directory holding kube-apiserver and etcd:
// KUBEBUILDER_ASSETS when set, else the cache directory named by the pinned
// versions in hack/testbins.versions. It fails with ErrNoAssets when the
// binaries are not there.
func AssetsDir() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		d, err := defaultAssetsDir()
		if err != nil {
			return "", err
		}
		dir = d
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		st, err := os.Stat(filepath.Join(dir, bin)) //nolint:gosec // the test binaries directory is the developer's own setting
		if err != nil || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%w (looked in %s)", ErrNoAssets, dir)
		}
	}
	return dir, nil
}

// RepoRoot returns the root of the source tree this package was built from.
func RepoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("kubetest: cannot locate the source tree")
	}
	// file is <root>/internal/kube/kubetest/assets.go.
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", "..")), nil
}

func defaultAssetsDir() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	versions, err := readVersions(filepath.Join(root, "hack", "testbins.versions"))
	if err != nil {
		return "", err
	}
	cache := os.Getenv("OUTPOST_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("kubetest: %w", err)
		}
		cache = filepath.Join(home, ".cache", "outpost")
	}
	return filepath.Join(cache, "testbins", "k8s-"+versions["K8S_VERSION"]+"-etcd-"+versions["ETCD_VERSION"]), nil
}

// readVersions reads the KEY=VALUE lines of hack/testbins.versions.
func readVersions(path string) (map[string]string, error) {
	f, err := os.Open(path) //nolint:gosec // hack/testbins.versions in this source tree
	if err != nil {
		return nil, fmt.Errorf("kubetest: pinned versions: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("kubetest: %s: malformed line %q", path, line)
		}
		out[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("kubetest: %s: %w", path, err)
	}
	if out["K8S_VERSION"] == "" || out["ETCD_VERSION"] == "" {
		return nil, fmt.Errorf("kubetest: %s must set K8S_VERSION and ETCD_VERSION", path)
	}
	return out, nil
}
