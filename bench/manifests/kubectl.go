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

// kubectl runs `kubectl apply --server-side` as a user would: one process
// per apply, against the same kube-apiserver, with the files on disk and a
// discovery cache that persists between applies (warmed before measuring),
// as on an operator's machine.
type kubectl struct {
	bin        string
	kubeconfig string
	cacheDir   string
}

// checkKubectl fails unless bin runs and reports the expected version.
func checkKubectl(ctx context.Context, bin, want string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, "version", "--client").CombinedOutput() //nolint:gosec // our own build
	if err != nil {
		return "", fmt.Errorf("%s does not run (%w); build it with hack/testbins.sh kubectl: %s", bin, err, strings.TrimSpace(string(out)))
	}
	v := strings.TrimSpace(string(out))
	if want != "" && !strings.Contains(v, want) {
		return "", fmt.Errorf("%s reports %q, want %s (the kube-apiserver's version); rebuild it with hack/testbins.sh kubectl", bin, v, want)
	}
	return v, nil
}

// apply applies every file in dir and returns the wall time and CPU time
// of the kubectl process. It fails unless kubectl reports one line per
// object.
func (k kubectl) apply(ctx context.Context, dir string, objects int) (wall, cpu time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, k.bin, //nolint:gosec // our own build and temp files
		"--kubeconfig", k.kubeconfig, "--cache-dir", k.cacheDir,
		"apply", "--server-side", "--field-manager=bench", "-f", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "HTTPS_PROXY=", "HTTP_PROXY=", "NO_PROXY=127.0.0.1", "KUBECTL_KUBERC=false")
	t0 := time.Now()
	err = cmd.Run()
	wall = time.Since(t0)
	if err != nil {
		return 0, 0, fmt.Errorf("kubectl apply: %w: %s", err, procstat.LastLines(stderr.String(), 10))
	}
	if got := strings.Count(stdout.String(), " serverside-applied"); got != objects {
		return 0, 0, fmt.Errorf("kubectl apply reported %d objects applied, want %d: %s", got, objects, procstat.LastLines(stdout.String()+stderr.String(), 10))
	}
	return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// kubectlPath is where hack/testbins.sh kubectl puts kubectl.
func kubectlPath(assets string) string { return filepath.Join(assets, "kubectl") }

var errNoKubectl = errors.New("kubectl is not built: run hack/testbins.sh kubectl (or make bench-manifests)")
