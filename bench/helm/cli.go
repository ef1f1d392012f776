package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/outposthq/outpost/bench/internal/procstat"
)

// helmVersion is the helm CLI the benchmark compares against: the version
// the executor is built on, as hack/helmcli.sh builds it.
const helmVersion = "v4.3.1"

// helmCLI runs `helm install` as a user's script would: one process per
// release, against the same kube-apiserver, with a HOME of its own whose
// discovery cache persists between installs (warmed before measuring), as
// on an operator's machine.
type helmCLI struct {
	bin        string
	kubeconfig string
	home       string
	// args are added to every install (-cli-args).
	args []string
}

// defaultHelmPath is where hack/helmcli.sh puts the CLI.
func defaultHelmPath() string {
	cache := os.Getenv("OUTPOST_CACHE")
	if cache == "" {
		cache = filepath.Join(os.Getenv("HOME"), ".cache", "outpost")
	}
	return filepath.Join(cache, "bin", "helm-"+helmVersion)
}

var errNoHelm = errors.New("the helm CLI is not built: run hack/helmcli.sh (or make bench-helm)")

// env is the CLI's environment: HOME and the kubeconfig, nothing of the
// caller's helm or kube settings, no proxies.
func (h helmCLI) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "HOME" || k == "KUBECONFIG" || strings.HasPrefix(k, "HELM_") || strings.HasPrefix(k, "XDG_") || strings.HasSuffix(strings.ToUpper(k), "_PROXY") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+h.home, "KUBECONFIG="+h.kubeconfig, "NO_PROXY=127.0.0.1")
}

// version fails unless the binary runs and reports helmVersion.
func (h helmCLI) version(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, h.bin, "version", "--short") //nolint:gosec // our own build
	cmd.Env = h.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s does not run (%w); build it with hack/helmcli.sh: %s", h.bin, err, strings.TrimSpace(string(out)))
	}
	v := strings.TrimSpace(string(out))
	if !strings.HasPrefix(v, helmVersion) {
		return "", fmt.Errorf("%s reports %q, want %s; rebuild it with hack/helmcli.sh", h.bin, v, helmVersion)
	}
	return v, nil
}

// install runs `helm install release chartDir -n namespace` and returns
// the process's wall and CPU time. It fails unless helm reports the
// release deployed.
func (h helmCLI) install(ctx context.Context, release, chartDir, namespace string) (wall, cpu time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args := append([]string{"install", release, chartDir, "-n", namespace}, h.args...)
	cmd := exec.CommandContext(ctx, h.bin, args...) //nolint:gosec // our own build and temp files
	cmd.Env = h.env()
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err = cmd.Run()
	wall = time.Since(t0)
	if err != nil {
		return 0, 0, fmt.Errorf("helm install %s: %w: %s", release, err, procstat.LastLines(stderr.String(), 10))
	}
	if !strings.Contains(stdout.String(), "STATUS: deployed") {
		return 0, 0, fmt.Errorf("helm install %s did not report the release deployed: %s", release, procstat.LastLines(stdout.String()+stderr.String(), 10))
	}
	return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}
