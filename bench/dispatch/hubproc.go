package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/outposthq/outpost/bench/internal/procstat"

	"github.com/outposthq/outpost/internal/devcert"
	"github.com/outposthq/outpost/internal/hubcmd"
	"github.com/outposthq/outpost/internal/transport"
)

// benchTenant is the one tenant every task and environment lives in.
const benchTenant = "bench"

// hubRunner runs outpost-hub commands as child processes.
type hubRunner struct {
	bin string
	// env is added to the hub's environment (hub mode for profiling).
	env []string
	// profileDir, when set, makes each hub write a CPU profile there.
	profileDir string
}

// Hub mode: when profiling, the benchmark runs itself as the hub (the same
// command tree as cmd/outpost-hub), so the profile holds the hub alone.
const (
	envHubMode    = "OUTPOST_BENCH_HUB_MODE"
	envHubProfile = "OUTPOST_BENCH_HUB_CPUPROFILE"
)

// hubMain is main in hub mode: outpost-hub, whose CPU profile runs from
// SIGUSR1 to SIGUSR2.
func hubMain() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if path := os.Getenv(envHubProfile); path != "" {
		sig := make(chan os.Signal, 2)
		signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
		go func() {
			var f *os.File
			for s := range sig {
				switch {
				case s == syscall.SIGUSR1 && f == nil:
					var err error
					if f, err = os.Create(path); err != nil { //nolint:gosec // named by the benchmark
						fmt.Fprintln(os.Stderr, "hub profile:", err)
						continue
					}
					if err := pprof.StartCPUProfile(f); err != nil {
						fmt.Fprintln(os.Stderr, "hub profile:", err)
					}
				case s == syscall.SIGUSR2 && f != nil:
					pprof.StopCPUProfile()
					_ = f.Close()
					f = nil
				}
			}
		}()
	}
	if err := hubcmd.NewRootCommand(os.Stdout, os.Stderr).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "outpost-hub:", err)
		os.Exit(1)
	}
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

// adminToken creates the bench tenant and an operator token in db.
func (r hubRunner) adminToken(ctx context.Context, db string) (string, error) {
	args := []string{"--db", db, "--log-level", "warn", "admin", "token", "--tenant", benchTenant, "--name", "bench"}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, r.bin, args...)
	cmd.Env = append(os.Environ(), r.env...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("outpost-hub admin token: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	tok := strings.TrimSpace(stdout.String())
	if tok == "" {
		return "", errors.New("outpost-hub admin token printed no token")
	}
	return tok, nil
}

// runningHub is a hub serving on loopback.
type runningHub struct {
	URL     string
	CAFile  string
	PID     int
	LogFile string
	// Profile is where the hub writes its CPU profile, if it does.
	Profile string

	stop   func() error
	signal func(os.Signal)
}

// startHub serves db on a free loopback port and waits until /healthz
// answers.
func (r hubRunner) startHub(ctx context.Context, db, dir string) (*runningHub, error) {
	addr, err := procstat.FreeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	tlsDir := filepath.Join(dir, "tls")
	logPath := filepath.Join(dir, "hub.log")
	logFile, err := os.Create(logPath) //nolint:gosec // our own temp dir
	if err != nil {
		return nil, err
	}
	args := []string{"--db", db, "--log-level", "warn", "serve", "--listen", addr, "--dev-tls-dir", tlsDir}
	h := &runningHub{URL: "https://" + addr, CAFile: filepath.Join(tlsDir, devcert.CAFile), LogFile: logPath}
	exited := make(chan error, 1)
	cmd := exec.Command(r.bin, args...) //nolint:gosec // our own build
	cmd.Env = append(os.Environ(), r.env...)
	if r.profileDir != "" {
		h.Profile = filepath.Join(r.profileDir, "hub-"+filepath.Base(dir)+".pprof")
		cmd.Env = append(cmd.Env, envHubProfile+"="+h.Profile)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The hub dies with the benchmark, even if the benchmark is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start outpost-hub: %w", err)
	}
	go func() { exited <- cmd.Wait() }()
	h.PID = cmd.Process.Pid
	h.signal = func(s os.Signal) { _ = cmd.Process.Signal(s) }
	h.stop = func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		err := waitOrTimeout(exited, 20*time.Second)
		if errors.Is(err, errTimeout) {
			_ = cmd.Process.Kill()
			<-exited
		}
		_ = logFile.Close()
		return err
	}
	if err := h.waitHealthy(ctx, exited); err != nil {
		_ = h.stop()
		return nil, fmt.Errorf("%w (hub log: %s)", err, procstat.Tail(logPath, 20))
	}
	return h, nil
}

var errTimeout = errors.New("timed out")

func waitOrTimeout(ch <-chan error, d time.Duration) error {
	select {
	case err := <-ch:
		return err
	case <-time.After(d):
		return errTimeout
	}
}

func (h *runningHub) waitHealthy(ctx context.Context, exited <-chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	var client *http.Client
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			if err == nil {
				err = errors.New("exit status 0")
			}
			return fmt.Errorf("outpost-hub exited during start: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if client == nil {
			// The CA appears once the hub has made its certificate.
			if _, err := os.Stat(h.CAFile); err != nil {
				continue
			}
			c, err := transport.NewClient(transport.Options{CAFile: h.CAFile})
			if err != nil {
				continue
			}
			client = c
			defer client.CloseIdleConnections()
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.URL+"/readyz", nil)
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
	}
	return errors.New("outpost-hub did not become ready within 60s")
}

// Stop shuts the hub down.
func (h *runningHub) Stop() error { return h.stop() }

// profile starts the hub's CPU profile, if it keeps one, and returns the
// function that stops it.
func (h *runningHub) profile() func() {
	if h.Profile == "" {
		return func() {}
	}
	h.signal(syscall.SIGUSR1)
	return func() {
		h.signal(syscall.SIGUSR2)
		time.Sleep(time.Second) // let the hub write the profile before it is stopped
	}
}
