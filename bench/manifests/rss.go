package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/outposthq/outpost/bench/internal/outpostproc"
	"github.com/outposthq/outpost/bench/internal/procstat"
	"github.com/outposthq/outpost/bench/internal/stats"

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
	h, err := outpostproc.StartHub(ctx, outpostproc.HubOptions{Bin: hubBin, Dir: dir})
	if err != nil {
		return nil, err
	}
	defer func() { _ = h.Stop() }()
	a, err := outpostproc.StartAgent(ctx, outpostproc.AgentOptions{Bin: agentBin, Dir: dir, Hub: h, Environment: rssEnvironment, Kubeconfig: kubeconfig})
	if err != nil {
		return nil, err
	}
	defer func() { _ = a.Stop() }()
	r := &rssResult{agentArgs: a.Args, agentVersion: a.Version}
	fmt.Fprintf(os.Stderr, "agent process %d connected; idling %v\n", a.PID(), cfg.settle)
	if err := sleep(ctx, cfg.settle); err != nil {
		return nil, err
	}
	m, err := procstat.ReadMemory(a.PID())
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
	digest, err := h.Upload(ctx, data)
	if err != nil {
		return nil, err
	}
	spec, err := json.Marshal(taskspec.Manifests{Release: "bench-rss", Namespace: ns, Artifact: digest})
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if _, err := h.Operator.EnqueueTask(ctx, connect.NewRequest(&outpostv1.EnqueueTaskRequest{
		Id: "bench-rss", Environment: rssEnvironment, Kind: taskspec.KindManifests, Spec: spec,
		Artifacts: []string{digest}, ConflictKeys: []string{ns + "/bench-rss"}, MaxAttempts: 1,
		Timeout: durationpb.New(20 * time.Minute),
	})); err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	task, err := h.WaitTask(ctx, a.Child, "bench-rss", 20*time.Minute)
	if err != nil {
		return nil, err
	}
	r.task = time.Since(t0)
	if task.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED {
		return nil, fmt.Errorf("task ended %s: %s", task.GetState(), task.GetError())
	}
	r.outcome = outcomeSummary(task.GetResult())
	if m, err = procstat.ReadMemory(a.PID()); err != nil {
		return nil, err
	}
	r.peak, r.done = m.HWM, m.RSS
	if err := sleep(ctx, cfg.settle); err != nil {
		return nil, err
	}
	if m, err = procstat.ReadMemory(a.PID()); err == nil {
		r.after = m.RSS
	}
	fmt.Fprintf(os.Stderr, "agent RSS idle %s, peak %s, after the task %s, %s later %s; task %s\n",
		stats.MiB(r.idle), stats.MiB(r.peak), stats.MiB(r.done), cfg.settle, stats.MiB(r.after), stats.Secs(r.task))
	return r, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
