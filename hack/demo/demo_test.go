package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/kube/kubetest"
)

// demoTimeout bounds one run of the demo in a test.
const demoTimeout = 3 * time.Minute

var (
	buildOnce sync.Once
	builtDir  string
	buildErr  error
)

// binaries builds outpost-hub, outpost-agent, outpost and the demo itself
// into a temporary directory, once per test run, and returns it.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		gomod, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		if builtDir, buildErr = os.MkdirTemp("", "outpost-demo-bin-"); buildErr != nil {
			return
		}
		for _, pkgs := range [][]string{{"./cmd/..."}, {"./hack/demo"}} {
			cmd := exec.Command("go", append([]string{"build", "-o", builtDir + "/"}, pkgs...)...)
			cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %w\n%s", pkgs, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtDir
}

func TestMain(m *testing.M) {
	if _, err := kubetest.AssetsDir(); err != nil && os.Getenv("CI") != "true" {
		fmt.Fprintf(os.Stderr, "\n!!! SKIPPING the demo tests: %v\n\n", err)
		os.Exit(0)
	}
	code := m.Run()
	if builtDir != "" {
		_ = os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

// demoCommand returns the demo, pointed at bin, in a fresh state directory
// and on a free port, with none of the user's OUTPOST_* settings.
func demoCommand(ctx context.Context, t *testing.T, bin string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	state := filepath.Join(t.TempDir(), "state")
	args = append([]string{"-bin", bin, "-state-dir", state, "-listen", "127.0.0.1:0"}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(binaries(t), "demo"), args...)
	cmd.Env = childEnv(os.Environ(), "NO_COLOR=1")
	cmd.WaitDelay = 10 * time.Second
	return cmd, state
}

// processesRunning lists the live Outpost processes (hub, agent, CLI)
// whose executable is in dir.
func processesRunning(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("cannot list processes without /proc: %v", err)
	}
	var found []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || filepath.Dir(exe) != dir {
			continue
		}
		switch filepath.Base(exe) {
		case hubBinary, agentBinary, cliBinary:
		default:
			continue
		}
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if f := strings.Fields(string(stat)); len(f) > 2 && f[2] == "Z" {
			continue // exited, waiting to be reaped by its parent
		}
		found = append(found, fmt.Sprintf("%s (pid %d)", filepath.Base(exe), pid))
	}
	return found
}

// assertNothingLeft fails the test when a process from dir outlived the demo.
func assertNothingLeft(t *testing.T, dir string) {
	t.Helper()
	// A process killed a moment ago may still be on its way out.
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := processesRunning(t, dir)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo left processes running: %s", strings.Join(left, ", "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// vaultSecret reads the payments token the demo put in its vault.
func vaultSecret(t *testing.T, state string) string {
	t.Helper()
	path := filepath.Join(state, vaultFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("vault file has mode %04o, want 0600", st.Mode().Perm())
	}
	b, err := os.ReadFile(path) //nolint:gosec // the test's own temp dir
	if err != nil {
		t.Fatal(err)
	}
	var vault map[string]map[string]string
	if err := json.Unmarshal(b, &vault); err != nil {
		t.Fatal(err)
	}
	secret := vault[vaultPath][vaultKey]
	if secret == "" {
		t.Fatalf("vault file holds no %s/%s", vaultPath, vaultKey)
	}
	return secret
}

// assertRow fails unless a line of output starts with the given words.
func assertRow(t *testing.T, output string, words ...string) {
	t.Helper()
	for line := range strings.Lines(output) {
		f := strings.Fields(line)
		if len(f) >= len(words) && slices.Equal(f[:len(words)], words) {
			return
		}
	}
	t.Errorf("the demo's output has no row %q", strings.Join(words, " "))
}

func assertContains(t *testing.T, output string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(output, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
}

func TestDemoOnceWalksThroughAndStopsEverything(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the hub, an agent and the CLI as processes")
	}
	bin := binaries(t)
	ctx, cancel := context.WithTimeout(t.Context(), demoTimeout)
	defer cancel()
	cmd, state := demoCommand(ctx, t, bin, "-once")
	out, err := cmd.CombinedOutput()
	output := string(out)
	if err != nil {
		t.Fatalf("demo -once: %v\n%s", err, output)
	}
	assertContains(t, output,
		"==> Starting the hub",
		"==> Starting an agent in demo/prod",
		"enrolled and connected",
		"==> Starting a local Kubernetes API server",
		"==> Deploying the shop into namespace shop",
		"release shop is at revision 1",
		"release shop is at revision 2",
		"image ghcr.io/example/shop:1.5.0",
		"outpost-agent-identity",
		"succeeded on attempt 1",
		"STATE:          succeeded",
		`"Authorization": "Bearer ${vault://local/payments/api/token}"`,
		"the payments API received the real token: 1 authorized call, 0 refused",
		`"echo": {"authorization": "Bearer [REDACTED]"}`,
		"not in the hub's database: hub.db",
		"release catalog: revision 1 created",
		"corrected",
		"Secret shop/catalog-db written by the agent",
		"its pod template got outpost.dev/secrets-checksum",
		"the sealed database password is in none of these files either",
		"release infra: revision 1 applied, in-sync",
		`api_header = "[REDACTED]"`,
		"state in Secret outpost-system/tfstate-default-infra",
		"terraform_data.db: update",
		"SYNC:         awaiting-approval",
		"release infra: revision 2 applied, in-sync",
		"The audit chain is intact",
		`export OUTPOST_CONFIG="$DEMO/outpost.yaml"`,
		"/metrics",
		"stopped the agent",
		"stopped the hub",
		"stopped the Kubernetes API server and etcd",
	)
	assertRow(t, output, "created", "Deployment", "shop")
	assertRow(t, output, "configured", "Deployment", "shop")
	assertRow(t, output, "pruned", "ConfigMap", "shop-feature-flags")
	assertRow(t, output, "skipped", "ConfigMap", "shop-banner", "exists", "and", "is", "not", "managed")
	if secret := vaultSecret(t, state); strings.Contains(output, secret) {
		t.Error("the demo printed the payments token")
	}
	for _, log := range []string{hubLogFile, agentLogFile} {
		if _, err := os.Stat(filepath.Join(state, log)); err != nil {
			t.Errorf("no %s in the state directory: %v", log, err)
		}
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", output)
	}
	assertNothingLeft(t, bin)
}

func TestDemoRunsUntilInterruptedThenStopsEverything(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the hub, an agent and the CLI as processes")
	}
	bin := binaries(t)
	ctx, cancel := context.WithTimeout(t.Context(), demoTimeout)
	defer cancel()
	cmd, _ := demoCommand(ctx, t, bin)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var output strings.Builder
	waiting := make(chan struct{})
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			output.WriteString(sc.Text() + "\n")
			if !signalled && strings.Contains(sc.Text(), "Press Ctrl-C") {
				signalled = true
				close(waiting)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case <-waiting:
	case <-copied:
		_ = cmd.Wait()
		t.Fatalf("the demo ended before waiting for Ctrl-C:\n%s", output.String())
	case <-ctx.Done():
		t.Fatal("the demo did not reach the point where it waits for Ctrl-C")
	}
	if running := processesRunning(t, bin); len(running) != 2 {
		t.Errorf("while waiting for Ctrl-C, want the hub and the agent running, got %v", running)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	<-copied
	err = cmd.Wait()
	if err != nil {
		t.Errorf("after Ctrl-C the demo exited with %v, want status 0", err)
	}
	assertContains(t, output.String(), "==> Stopping", "stopped the agent", "stopped the payments API", "stopped the hub")
	if t.Failed() {
		t.Logf("demo output:\n%s", output.String())
	}
	assertNothingLeft(t, bin)
}

func TestDemoFailureSaysWhereToLookAndStopsEverything(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the hub and the CLI as processes")
	}
	built := binaries(t)
	// The real hub and CLI, and an agent that cannot start.
	bin := t.TempDir()
	for _, name := range []string{hubBinary, cliBinary} {
		if err := os.Symlink(filepath.Join(built, name), filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	agent := "#!/bin/sh\necho 'outpost-agent: no route to the hub (the test says so)' >&2\nexit 3\n"
	if err := os.WriteFile(filepath.Join(bin, agentBinary), []byte(agent), 0o700); err != nil { //nolint:gosec // an executable stand-in
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), demoTimeout)
	defer cancel()
	cmd, _ := demoCommand(ctx, t, bin, "-once")
	out, err := cmd.CombinedOutput()
	output := string(out)
	if code := cmd.ProcessState.ExitCode(); code != exitFailed {
		t.Errorf("demo exited %d (%v), want %d", code, err, exitFailed)
	}
	assertContains(t, output,
		"✗ The demo failed: the agent stopped while enrolling",
		"stopped the hub",
		"agent.log, last lines:",
		"no route to the hub (the test says so)",
		"hub.log, last lines:",
	)
	if t.Failed() {
		t.Logf("demo output:\n%s", output)
	}
	assertNothingLeft(t, built)
}
