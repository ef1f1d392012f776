package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/devcert"
	"github.com/outposthq/outpost/internal/kube/kubetest"
)

// What the demo creates, and how long it waits for it.
const (
	tenant      = "demo"
	envName     = "prod"
	vaultPath   = "payments/api"
	vaultKey    = "token"
	conflictKey = "payments"
	// vaultRef is how the task names the payments token; only the agent
	// can resolve it.
	vaultRef = "vault://local/" + vaultPath + "/" + vaultKey

	readyTimeout = 30 * time.Second
	taskTimeout  = 2 * time.Minute
	logTailLines = 15
)

// Files in the state directory.
const (
	hubDBFile     = "hub.db"
	tlsDir        = "tls"
	caFile        = tlsDir + "/" + devcert.CAFile
	cliConfigFile = "outpost.yaml"
	bootstrapFile = "bootstrap-token"
	vaultFile     = "vault.json"
	hubLogFile    = "hub.log"
	agentLogFile  = "agent.log"
)

// demo is one run: the processes and server it started and what it learnt
// along the way. Its steps run in order; each needs what the ones before
// it set.
type demo struct {
	opts options
	out  *printer
	// bin and dir are absolute: the bin directory and the state directory.
	bin, dir string
	// env is the environment of every child: the user's, without OUTPOST_*
	// settings that would point the CLI or agent elsewhere.
	env []string

	hubAddr, hubURL string
	hub, agent      *process
	cluster         *kubetest.Env
	api             *payments
	// environment is tenant/name as the hub names it.
	environment string
	agentID     string
	secret      string
	// dbPassword is the sealed secret's value, searched for like secret.
	dbPassword string
	specJSON   string
	task       *v1.Task
	// taskOutputs are everything the CLI printed about the task.
	taskOutputs map[string]string
	// manifestTasks are the ids of the manifests tasks, in order.
	manifestTasks []string
}

func newDemo(opts options, out *printer) *demo {
	return &demo{opts: opts, out: out, taskOutputs: map[string]string{}}
}

// run walks through the demo, then waits for Ctrl-C (unless -once), and
// stops what it started. It returns the exit code.
func (d *demo) run(ctx context.Context) int {
	err := d.walkThrough(ctx)
	switch {
	case err != nil && ctx.Err() != nil:
		d.out.step("Interrupted; stopping what the demo started")
		d.stopAll()
		return exitInterrupted
	case err != nil:
		d.failure(err)
		return exitFailed
	case d.opts.once:
		d.out.step("Stopping (-once)")
		d.stopAll()
		d.out.say("State and logs are kept in %s", d.dir)
		return exitOK
	}
	d.out.plain("\nPress Ctrl-C to stop the agent and the hub.")
	var died error
	select {
	case <-ctx.Done():
	case <-d.hub.exited():
		died = d.hub.exitError()
	case <-d.agent.exited():
		died = d.agent.exitError()
	}
	if died != nil {
		d.failure(fmt.Errorf("%w, while the demo was waiting for Ctrl-C", died))
		return exitFailed
	}
	d.out.step("Stopping")
	d.stopAll()
	d.out.say("State and logs are kept in %s", d.dir)
	if underGoRun() {
		d.out.say("(`go run` exits 1 after Ctrl-C whatever the program does; the demo itself stopped cleanly)")
	}
	return exitOK
}

// walkThrough runs the steps in order and stops at the first error.
func (d *demo) walkThrough(ctx context.Context) error {
	steps := []func(context.Context) error{
		d.prepare,
		d.startCluster,
		d.startHub,
		d.login,
		d.createEnvironment,
		d.startPayments,
		d.startAgent,
		d.deploy,
		d.helmDeploy,
		d.reconcileDrift,
		d.sealedSecret,
		d.terraformRelease,
		d.runTask,
		d.inspect,
		d.checkSecret,
		d.summary,
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// failure says what failed, stops what the demo started, and shows where
// to look.
func (d *demo) failure(err error) {
	d.out.fail("The demo failed: %v", err)
	d.out.step("Stopping what the demo started")
	d.stopAll()
	if d.dir == "" {
		return
	}
	d.out.step("Logs, all in %s", d.dir)
	for _, p := range []*process{d.hub, d.agent} {
		if p == nil {
			continue
		}
		d.out.say("%s: %s, last lines:", p.name, p.log)
		d.out.block(tail(p.log, logTailLines))
	}
}

// stopAll stops the agent, the payments API, the hub and the Kubernetes
// API server, in that order, whichever of them were started.
func (d *demo) stopAll() {
	d.stopProcess(d.agent)
	if d.api != nil {
		d.api.stop()
		d.out.ok("stopped the payments API")
	}
	d.stopProcess(d.hub)
	d.stopCluster()
}

func (d *demo) stopProcess(p *process) {
	if p == nil {
		return
	}
	switch killed, gone := p.stop(stopGrace); {
	case gone:
		d.out.say("the %s (pid %d) had already exited", p.name, p.pid())
	case killed:
		d.out.say("killed the %s (pid %d): it did not stop within %v of SIGTERM", p.name, p.pid(), stopGrace)
	default:
		d.out.ok("stopped the %s (pid %d)", p.name, p.pid())
	}
}

// underGoRun reports whether the demo's parent is the go command, which
// sets its own exit status to 1 when it sees an interrupt.
func underGoRun() bool {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", os.Getppid()))
	return err == nil && strings.TrimSpace(string(comm)) == "go"
}

// path returns the absolute path of a file in the state directory.
func (d *demo) path(name string) string { return filepath.Join(d.dir, name) }

// binary returns the absolute path of one of the Outpost binaries.
func (d *demo) binary(name string) string { return filepath.Join(d.bin, name) }

// binaryShown returns a binary's path as the user gave it, for printed
// commands.
func (d *demo) binaryShown(name string) string { return filepath.Join(d.opts.binDir, name) }

// makeStateDir creates dir, or a new directory under the user's cache
// when dir is empty, and returns its absolute path. A given directory must
// be empty, so the demo starts from a fresh hub.
func makeStateDir(dir string) (string, error) {
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("state directory: no cache directory (%w): pass -state-dir DIR", err)
		}
		parent := filepath.Join(cache, "outpost", "demo")
		if err := os.MkdirAll(parent, 0o700); err != nil {
			return "", fmt.Errorf("state directory: %w", err)
		}
		d, err := os.MkdirTemp(parent, time.Now().Format("20060102-150405-"))
		if err != nil {
			return "", fmt.Errorf("state directory: %w", err)
		}
		return d, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	entries, err := os.ReadDir(abs)
	if err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	if len(entries) > 0 {
		return "", fmt.Errorf("state directory %s is not empty: pass a new or empty one, or leave -state-dir out", abs)
	}
	return abs, nil
}

// childEnv returns environ without OUTPOST_* variables, which would point
// the CLI at another hub or the agent at other files, plus extra.
func childEnv(environ []string, extra ...string) []string {
	out := make([]string, 0, len(environ)+len(extra))
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "OUTPOST_") {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// pickAddr returns listen if it is free, else a free loopback port, and
// whether it had to move.
func pickAddr(listen string) (addr string, moved bool, err error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		moved = true
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return "", false, fmt.Errorf("find a free port for the hub: %w", err)
		}
	}
	addr = ln.Addr().String()
	_ = ln.Close()
	return addr, moved, nil
}

// hubURLFor returns the URL to reach a hub listening on addr: a wildcard
// address is reached over loopback, which the development certificate
// covers.
func hubURLFor(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "https://" + addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, port)
}
