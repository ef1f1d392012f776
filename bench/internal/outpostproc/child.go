package outpostproc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/outposthq/outpost/bench/internal/procstat"
)

// stopGrace is how long Stop waits after SIGTERM before it kills.
const stopGrace = 20 * time.Second

// Child is a process the benchmark started; it dies with the benchmark.
type Child struct {
	// Name is the binary's base name, for messages.
	Name string
	// LogPath holds the process's stdout and stderr.
	LogPath string
	// Profile is the CPU profile the process writes between StartProfile
	// and the function it returns; empty when it keeps none.
	Profile string

	cmd     *exec.Cmd
	exited  chan error
	logFile *os.File
}

// Start starts bin with args, its output in logPath and env added to the
// benchmark's environment. Proxies are cleared: everything is loopback.
func Start(bin, logPath string, env []string, args ...string) (*Child, error) {
	logFile, err := os.Create(logPath) //nolint:gosec // the benchmark's own temp dir
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...) //nolint:gosec // our own build
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(append(os.Environ(), "HTTPS_PROXY=", "HTTP_PROXY="), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s: %w", filepath.Base(bin), err)
	}
	c := &Child{Name: filepath.Base(bin), LogPath: logPath, cmd: cmd, exited: make(chan error, 1), logFile: logFile}
	go func() { c.exited <- cmd.Wait() }()
	return c, nil
}

// PID returns the process id.
func (c *Child) PID() int { return c.cmd.Process.Pid }

// Stop sends SIGTERM, kills the process if it has not exited after 20 s,
// and returns how it exited.
func (c *Child) Stop() error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-c.exited:
	case <-time.After(stopGrace):
		_ = c.cmd.Process.Kill()
		err = <-c.exited
	}
	c.exited <- err
	_ = c.logFile.Close()
	return err
}

// Alive fails when the process has exited, quoting the end of its log.
func (c *Child) Alive() error {
	select {
	case err := <-c.exited:
		c.exited <- err
		if err == nil {
			err = errors.New("exit status 0")
		}
		return fmt.Errorf("%s exited (%w): %s", c.Name, err, procstat.Tail(c.LogPath, 15))
	default:
		return nil
	}
}

// StartProfile starts the process's CPU profile, if it keeps one, and
// returns the function that stops it and lets the process write it.
func (c *Child) StartProfile() func() {
	if c.Profile == "" {
		return func() {}
	}
	_ = c.cmd.Process.Signal(syscall.SIGUSR1)
	return func() {
		_ = c.cmd.Process.Signal(syscall.SIGUSR2)
		time.Sleep(time.Second) // let the process write the profile before it is stopped
	}
}
