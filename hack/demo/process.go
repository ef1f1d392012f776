package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// stopGrace is how long a child gets to shut down after SIGTERM before its
// whole process group is killed.
const stopGrace = 10 * time.Second

// process is a long-running child of the demo (the hub or the agent) with
// its output in a log file. It runs in a process group of its own: stop can
// then reach anything the child started, and a Ctrl-C at the terminal
// reaches the demo alone, which stops the children in its own order (the
// agent before the hub).
type process struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	// err is cmd.Wait's result; it is set before done is closed.
	err error
}

// startProcess starts bin with args and env, appending its stdout and
// stderr to logPath.
func startProcess(name, logPath, bin string, env []string, args ...string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600) //nolint:gosec // a file in the demo's own state directory
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer logFile.Close()             // the child holds its own descriptor from Start on
	cmd := exec.Command(bin, args...) //nolint:gosec // the demo runs the binaries it was pointed at
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = env
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// pid returns the child's process id, which is also its process group id.
func (p *process) pid() int { return p.cmd.Process.Pid }

// exited is closed once the child has exited and been reaped.
func (p *process) exited() <-chan struct{} { return p.done }

// exitError describes how the child ended; call it only after exited.
func (p *process) exitError() error {
	if p.err == nil {
		return fmt.Errorf("%s exited with status 0 but should still be running", p.name)
	}
	return fmt.Errorf("%s exited: %w", p.name, p.err)
}

// stop sends SIGTERM to the child's process group, waits up to grace for
// the child to exit, then kills the group. It reports whether the child
// had to be killed, and whether it had already exited on its own.
func (p *process) stop(grace time.Duration) (killed, alreadyGone bool) {
	select {
	case <-p.done:
		alreadyGone = true
	default:
		_ = signalGroup(p.pid(), syscall.SIGTERM)
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-p.done:
		case <-timer.C:
			killed = true
			_ = signalGroup(p.pid(), syscall.SIGKILL)
			<-p.done
		}
	}
	// Anything the child left behind in its group goes too.
	_ = signalGroup(p.pid(), syscall.SIGKILL)
	return killed, alreadyGone
}

// signalGroup signals every process in group pgid; a group that is already
// empty is not an error.
func signalGroup(pgid int, sig syscall.Signal) error {
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal process group %d: %w", pgid, err)
	}
	return nil
}
