package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/outposthq/outpost/bench/internal/procstat"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/kube/kubetest"
	"github.com/outposthq/outpost/internal/taskspec"
)

// rssResult is phase 3: the agent process's memory, in KiB.
type rssResult struct {
	idle      int64 // VmRSS connected and settled, before any task
	peak      int64 // VmHWM when the large task has succeeded
	done      int64 // VmRSS right after the task
	after     int64 // VmRSS after settling again
	task      time.Duration
	objects   int
	artifact  int // bytes
	outcome   string
	agentArgs []string
	// agentVersion is what the binary reports (make build stamps it).
	agentVersion string
}

// rssEnvironment is the environment the agent process serves.
const rssEnvironment = "k8s"

// runRSS is phase 3: a real outpost-agent process, enrolled with a real
// outpost-hub process, idles and then runs the large bundle as a task.
func runRSS(ctx context.Context, cfg config, env *kubetest.Env, kubeconfig, tmp string) (*rssResult, error) {
	hubBin, agentBin := filepath.Join(cfg.binDir, "outpost-hub"), filepath.Join(cfg.binDir, "outpost-agent")
	for _, b := range []string{hubBin, agentBin} {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("%s is not built: run make build", b)
		}
	}
	dir := filepath.Join(tmp, "rss")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	h, err := startHub(ctx, hubBin, dir)
	if err != nil {
		return nil, err
	}
	defer h.stop()
	defer h.client.CloseIdleConnections()
	if _, err := h.op.CreateEnvironment(ctx, connect.NewRequest(&outpostv1.CreateEnvironmentRequest{Name: rssEnvironment})); err != nil {
		return nil, fmt.Errorf("create environment: %w", err)
	}
	bt, err := h.op.CreateBootstrapToken(ctx, connect.NewRequest(&outpostv1.CreateBootstrapTokenRequest{Environment: rssEnvironment, Ttl: durationpb.New(time.Hour)}))
	if err != nil {
		return nil, fmt.Errorf("bootstrap token: %w", err)
	}
	tokenFile := filepath.Join(dir, "bootstrap-token")
	if err := os.WriteFile(tokenFile, []byte(bt.Msg.GetToken()), 0o600); err != nil {
		return nil, err
	}

	r := &rssResult{}
	if out, err := exec.CommandContext(ctx, agentBin, "--version").Output(); err == nil { //nolint:gosec // our own build
		r.agentVersion = strings.TrimPrefix(strings.TrimSpace(string(out)), "outpost-agent version ")
	}
	r.agentArgs = agentProcessArgs(h, tokenFile, kubeconfig)
	a, err := startChild(agentBin, filepath.Join(dir, "agent.log"), r.agentArgs...)
	if err != nil {
		return nil, err
	}
	defer a.stop()
	if err := waitConnected(ctx, h, a); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "agent process %d connected; idling %v\n", a.pid(), cfg.settle)
	if err := sleep(ctx, cfg.settle); err != nil {
		return nil, err
	}
	m, err := procstat.ReadMemory(a.pid())
	if err != nil {
		return nil, err
	}
	r.idle = m.RSS

	ns := "bench-rss"
	if err := newNamespace(ctx, env, ns); err != nil {
		return nil, err
	}
	b := generate(ns, "app", cfg.objects, 42)
	data := b.stream()
	r.objects, r.artifact = b.objects, len(data)
	digest, err := h.upload(ctx, data)
	if err != nil {
		return nil, err
	}
	spec, err := json.Marshal(taskspec.Manifests{Release: "bench-rss", Namespace: ns, Artifact: digest})
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if _, err := h.op.EnqueueTask(ctx, connect.NewRequest(&outpostv1.EnqueueTaskRequest{
		Id: "bench-rss", Environment: rssEnvironment, Kind: taskspec.KindManifests, Spec: spec,
		Artifacts: []string{digest}, ConflictKeys: []string{ns + "/bench-rss"}, MaxAttempts: 1,
		Timeout: durationpb.New(20 * time.Minute),
	})); err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	task, err := waitTask(ctx, h, a, "bench-rss", 20*time.Minute)
	if err != nil {
		return nil, err
	}
	r.task = time.Since(t0)
	if task.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED {
		return nil, fmt.Errorf("task ended %s: %s", task.GetState(), task.GetError())
	}
	r.outcome = outcomeSummary(task.GetResult())
	if m, err = procstat.ReadMemory(a.pid()); err != nil {
		return nil, err
	}
	r.peak, r.done = m.HWM, m.RSS
	if err := sleep(ctx, cfg.settle); err != nil {
		return nil, err
	}
	if m, err = procstat.ReadMemory(a.pid()); err == nil {
		r.after = m.RSS
	}
	fmt.Fprintf(os.Stderr, "agent RSS idle %s, peak %s, after the task %s, %s later %s; task %s\n",
		mib(r.idle), mib(r.peak), mib(r.done), cfg.settle, mib(r.after), secs(r.task))
	return r, nil
}

// agentProcessArgs is the outpost-agent command line: the hub, a bootstrap
// token, the cluster through --kubeconfig, everything else default (so the
// identity lives in a Secret in the agent's namespace, outpost-system, as
// in a cluster).
func agentProcessArgs(h *hubProc, tokenFile, kubeconfig string) []string {
	return []string{
		"--hub", h.url, "--ca-file", h.caFile,
		"--bootstrap-token-file", tokenFile,
		"--environment", benchTenant + "/" + rssEnvironment,
		"--kubeconfig", kubeconfig,
		"--log-level", "info",
	}
}

// waitConnected waits until the hub lists the agent as connected.
func waitConnected(ctx context.Context, h *hubProc, a *child) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if err := a.alive(); err != nil {
			return err
		}
		resp, err := h.op.ListAgents(ctx, connect.NewRequest(&outpostv1.ListAgentsRequest{Environment: rssEnvironment}))
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
	return fmt.Errorf("the agent did not connect within 60s: %s", procstat.Tail(a.logPath, 15))
}

// waitTask polls the task until it ends.
func waitTask(ctx context.Context, h *hubProc, a *child, id string, timeout time.Duration) (*outpostv1.Task, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if err := a.alive(); err != nil {
			return nil, err
		}
		resp, err := h.op.GetTask(ctx, connect.NewRequest(&outpostv1.GetTaskRequest{Id: id}))
		if err == nil {
			switch t := resp.Msg.GetTask(); t.GetState() {
			case outpostv1.TaskState_TASK_STATE_SUCCEEDED, outpostv1.TaskState_TASK_STATE_FAILED, outpostv1.TaskState_TASK_STATE_CANCELLED:
				return t, nil
			}
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("task %s did not end within %v: %s", id, timeout, procstat.Tail(a.logPath, 15))
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
