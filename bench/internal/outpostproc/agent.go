package outpostproc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/outposthq/outpost/bench/internal/procstat"
	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
)

// AgentOptions says how to run an agent.
type AgentOptions struct {
	// Bin is outpost-agent, or a program that acts as it. Required.
	Bin string
	// Dir holds the agent's log and bootstrap token. Required.
	Dir string
	// Hub is the hub the agent enrolls with. Required.
	Hub *Hub
	// Environment is the environment of Tenant the agent serves; it is
	// created. Required.
	Environment string
	// Kubeconfig, when set, gives the agent a cluster (--kubeconfig).
	Kubeconfig string
	// Args are added to the command line, such as --concurrency 16.
	Args []string
	// Env is added to the agent's environment.
	Env []string
	// CPUProfile, when set, is passed as EnvCPUProfile: an agent that
	// serves profile signals writes its CPU profile there.
	CPUProfile string
}

// Agent is an outpost-agent process enrolled with a hub.
type Agent struct {
	*Child
	// Args is its command line.
	Args []string
	// Version is what the binary reports (make build stamps it).
	Version string
}

// StartAgent creates the environment and a bootstrap token for it, then
// starts the agent and waits until the hub lists it as connected.
// Everything not in Options is left at the agent's defaults (with a
// cluster, its identity lives in a Secret in outpost-system).
func StartAgent(ctx context.Context, o AgentOptions) (*Agent, error) {
	if o.Bin == "" || o.Dir == "" || o.Hub == nil || o.Environment == "" {
		return nil, errors.New("outpostproc: AgentOptions: Bin, Dir, Hub and Environment are required")
	}
	h := o.Hub
	if _, err := h.Operator.CreateEnvironment(ctx, connect.NewRequest(&outpostv1.CreateEnvironmentRequest{Name: o.Environment})); err != nil {
		return nil, fmt.Errorf("create environment %s: %w", o.Environment, err)
	}
	bt, err := h.Operator.CreateBootstrapToken(ctx, connect.NewRequest(&outpostv1.CreateBootstrapTokenRequest{Environment: o.Environment, Ttl: durationpb.New(time.Hour)}))
	if err != nil {
		return nil, fmt.Errorf("bootstrap token: %w", err)
	}
	tokenFile := filepath.Join(o.Dir, "bootstrap-token")
	if err := os.WriteFile(tokenFile, []byte(bt.Msg.GetToken()), 0o600); err != nil {
		return nil, err
	}
	args := []string{
		"--hub", h.URL, "--ca-file", h.CAFile,
		"--bootstrap-token-file", tokenFile,
		"--environment", Tenant + "/" + o.Environment,
	}
	if o.Kubeconfig != "" {
		args = append(args, "--kubeconfig", o.Kubeconfig)
	}
	args = append(append(args, "--log-level", "info"), o.Args...)
	a := &Agent{Args: args}
	env := o.Env
	if o.CPUProfile != "" {
		env = append(env[:len(env):len(env)], EnvCPUProfile+"="+o.CPUProfile)
	}
	cmd := exec.CommandContext(ctx, o.Bin, "--version") //nolint:gosec // our own build
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.Output(); err == nil {
		a.Version = strings.TrimPrefix(strings.TrimSpace(string(out)), "outpost-agent version ")
	}
	if a.Child, err = Start(o.Bin, filepath.Join(o.Dir, "agent.log"), env, args...); err != nil {
		return nil, err
	}
	a.Name, a.Profile = "outpost-agent", o.CPUProfile
	if err := h.waitConnected(ctx, a.Child, o.Environment); err != nil {
		_ = a.Stop()
		return nil, err
	}
	return a, nil
}

// waitConnected waits until the hub lists an agent of environment as
// connected.
func (h *Hub) waitConnected(ctx context.Context, a *Child, environment string) error {
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		if err := a.Alive(); err != nil {
			return err
		}
		resp, err := h.Operator.ListAgents(ctx, connect.NewRequest(&outpostv1.ListAgentsRequest{Environment: environment}))
		if err == nil {
			for _, ag := range resp.Msg.GetAgents() {
				if ag.GetConnected() {
					return nil
				}
			}
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("the agent did not connect within %v: %s", readyTimeout, procstat.Tail(a.LogPath, 15))
}

// RedactArgs shortens temp paths and the hub's port in a command line,
// for reports.
func RedactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.HasPrefix(a, os.TempDir()) {
			a = "<tmp>/" + a[strings.LastIndexByte(a, '/')+1:]
		}
		if strings.HasPrefix(a, "https://127.0.0.1:") {
			a = "https://127.0.0.1:<port>"
		}
		out[i] = a
	}
	return out
}
