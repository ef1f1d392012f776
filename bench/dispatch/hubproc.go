package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/outposthq/outpost/bench/internal/outpostproc"

	"github.com/outposthq/outpost/internal/hubcmd"
)

// hubRunner says how to run each configuration's hub.
type hubRunner struct {
	bin string
	// env is added to the hub's environment (hub mode for profiling).
	env []string
	// profileDir, when set, makes each hub write a CPU profile there.
	profileDir string
}

// envHubMode makes this program run as outpost-hub: when profiling, the
// benchmark runs itself as the hub (the same command tree as
// cmd/outpost-hub), so the profile holds the hub alone.
const envHubMode = "OUTPOST_BENCH_HUB_MODE"

// hubMain is main in hub mode: outpost-hub, whose CPU profile runs from
// SIGUSR1 to SIGUSR2 (outpostproc.ServeProfileSignals).
func hubMain() {
	outpostproc.ServeProfileSignals()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := hubcmd.NewRootCommand(os.Stdout, os.Stderr).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "outpost-hub:", err)
		os.Exit(1)
	}
}

// startHub starts a hub on db with its files in dir, profiling itself
// when the runner asks for it.
func (r hubRunner) startHub(ctx context.Context, db, dir string) (*outpostproc.Hub, error) {
	o := outpostproc.HubOptions{Bin: r.bin, Dir: dir, DB: db, Env: r.env}
	if r.profileDir != "" {
		o.CPUProfile = filepath.Join(r.profileDir, "hub-"+filepath.Base(dir)+".pprof")
	}
	return outpostproc.StartHub(ctx, o)
}

// buildHub builds ./cmd/outpost-hub into dir.
func buildHub(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "outpost-hub")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/outpost-hub")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build outpost-hub: %w\n%s", err, out)
	}
	return bin, nil
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the module: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run the benchmark from inside the outpost module (go run ./bench/dispatch)")
	}
	return filepath.Dir(gomod), nil
}
