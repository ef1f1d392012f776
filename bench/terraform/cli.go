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
	"syscall"
	"time"

	"github.com/outposthq/outpost/bench/internal/procstat"
	"github.com/outposthq/outpost/internal/tofutest"
)

// cliTimeout bounds one tofu command.
const cliTimeout = 5 * time.Minute

var errNoTofu = errors.New("the OpenTofu CLI is not built: run hack/tofu.sh (or make bench-terraform)")

// tofuCLI runs tofu as a user's shell loop would: one process per command,
// in the module's directory, with a HOME of its own and nothing of the
// caller's tofu or kube settings.
type tofuCLI struct {
	bin  string
	home string
}

// env is the CLI's environment: the caller's minus HOME, KUBECONFIG,
// TF_*, proxies; checkpoint calls off, since nothing may leave the machine.
func (c tofuCLI) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "HOME" || k == "KUBECONFIG" || strings.HasPrefix(k, "TF_") || strings.HasSuffix(strings.ToUpper(k), "_PROXY") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+c.home, "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1", "NO_PROXY=127.0.0.1")
}

// version fails unless the binary runs and reports tofutest.Version.
func (c tofuCLI) version(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, c.bin, "version") //nolint:gosec // our own build
	cmd.Env = c.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s does not run (%w); build it with hack/tofu.sh: %s", c.bin, err, strings.TrimSpace(string(out)))
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if first != "OpenTofu "+tofutest.Version {
		return "", fmt.Errorf("%s reports %q, want OpenTofu %s; rebuild it with hack/tofu.sh", c.bin, first, tofutest.Version)
	}
	return strings.TrimPrefix(first, "OpenTofu "), nil
}

// cliRun is what one module's init and apply took.
type cliRun struct {
	init, apply time.Duration
	cpu         time.Duration
	// maxRSS is the larger of the two processes' peak RSS, KiB.
	maxRSS int64
}

// initApply runs `tofu init -input=false` and then `tofu apply
// -auto-approve -input=false` in dir, as `init && apply` in a shell.
func (c tofuCLI) initApply(ctx context.Context, dir string) (cliRun, error) {
	var r cliRun
	var err error
	if r.init, err = c.run(ctx, dir, &r, "init", "-input=false", "-no-color"); err != nil {
		return r, err
	}
	r.apply, err = c.run(ctx, dir, &r, "apply", "-auto-approve", "-input=false", "-no-color")
	return r, err
}

// run runs one tofu command in dir, adds its CPU and peak RSS to r and
// returns its wall time.
func (c tofuCLI) run(ctx context.Context, dir string, r *cliRun, args ...string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, cliTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, c.bin, args...) //nolint:gosec // our own build and temp files
	cmd.Dir, cmd.Env = dir, c.env()
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err := cmd.Run()
	wall := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("tofu %s in %s: %w: %s", args[0], filepath.Base(dir), err, procstat.LastLines(out.String(), 15))
	}
	ps := cmd.ProcessState
	r.cpu += ps.UserTime() + ps.SystemTime()
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = max(r.maxRSS, ru.Maxrss) // KiB on Linux
	}
	return wall, nil
}
