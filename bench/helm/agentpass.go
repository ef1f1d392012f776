package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/outposthq/outpost/bench/internal/outpostproc"
	"github.com/outposthq/outpost/bench/internal/procstat"
	"github.com/outposthq/outpost/bench/internal/stats"
	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/taskspec"
)

// Bounds of the agent pass.
const (
	// enqueuers is how many operator calls enqueue at once.
	enqueuers = 8
	// taskTimeout bounds each task, and passTimeout the whole pass.
	taskTimeout = 10 * time.Minute
	passTimeout = 20 * time.Minute
)

// agentPass starts an agent with --concurrency c, lets it idle, warms it
// up with one release, then enqueues every release at once and waits
// until the agent has reported each.
func (b *bench) agentPass(ctx context.Context, c int) (*pass, error) {
	dir := filepath.Join(b.tmp, fmt.Sprintf("agent-c%d", c))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	environment := fmt.Sprintf("k8s-c%d", c)
	opts := outpostproc.AgentOptions{
		Bin: b.agentBin, Dir: dir, Hub: b.hub, Environment: environment, Kubeconfig: b.kubeconfig,
		// Each agent has its own identity Secret: they serve different
		// environments.
		Args: []string{"--concurrency", strconv.Itoa(c), "--identity-secret", "outpost-agent-identity-c" + strconv.Itoa(c)},
		Env:  b.agentEnv,
	}
	if b.cfg.cpuprofile != "" {
		opts.CPUProfile = profilePath(b.cfg.cpuprofile, c)
	}
	a, err := outpostproc.StartAgent(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer func() { _ = a.Stop() }()
	p := &pass{agent: true, concurrency: c, agentArgs: a.Args, agentVersion: a.Version, profile: opts.CPUProfile}
	fmt.Fprintf(os.Stderr, "agent --concurrency %d: process %d connected; idling %v\n", c, a.PID(), b.cfg.settle)
	if err := sleep(ctx, b.cfg.settle); err != nil {
		return nil, err
	}
	m, err := procstat.ReadMemory(a.PID())
	if err != nil {
		return nil, err
	}
	p.idle = m.RSS

	// Warm-up: the executor's discovery cache and clients, the hub's
	// statements.
	warm := fmt.Sprintf("bench-warmup-c%d", c)
	if err := b.createNamespaces(ctx, warm); err != nil {
		return nil, err
	}
	wreq, err := b.installTask(environment, warm+"-warmup", "warmup", warm)
	if err != nil {
		return nil, err
	}
	if _, err := b.hub.Operator.EnqueueTask(ctx, connect.NewRequest(wreq)); err != nil {
		return nil, fmt.Errorf("warm-up: enqueue: %w", err)
	}
	wt, err := b.hub.WaitTask(ctx, a.Child, wreq.GetId(), taskTimeout)
	if err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	if wt.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED {
		return nil, fmt.Errorf("warm-up: task ended %s: %s", wt.GetState(), wt.GetError())
	}

	l := b.layout(fmt.Sprintf("c%d", c))
	if err := b.createNamespaces(ctx, l.namespaces()...); err != nil {
		return nil, err
	}
	reqs := make([]*outpostv1.EnqueueTaskRequest, l.releases)
	ids := make(map[string]bool, l.releases)
	for i := range reqs {
		if reqs[i], err = b.installTask(environment, fmt.Sprintf("helm-c%d-%03d", c, i), l.release(i), l.namespace(i)); err != nil {
			return nil, err
		}
		ids[reqs[i].GetId()] = true
	}
	logStart, err := fileSize(a.LogPath)
	if err != nil {
		return nil, err
	}
	before, err := b.meter.Read(ctx)
	if err != nil {
		return nil, err
	}
	agent0, _ := procstat.CPUTime(a.PID())
	hub0, _ := procstat.CPUTime(b.hub.PID())
	busy := procstat.StartBusy()
	stopProfile := a.StartProfile()
	fmt.Fprintf(os.Stderr, "agent --concurrency %d: enqueueing %d releases …\n", c, l.releases)

	t0 := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(enqueuers)
	for _, req := range reqs {
		g.Go(func() error {
			if _, err := b.hub.Operator.EnqueueTask(gctx, connect.NewRequest(req)); err != nil {
				return fmt.Errorf("enqueue %s: %w", req.GetId(), err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	p.enqueue = time.Since(t0)
	records, err := waitReported(ctx, a.Child, logStart, ids)
	if err != nil {
		return nil, err
	}
	stopProfile()

	p.busy, p.load = busy.Share(), procstat.LoadAverage()
	agent1, _ := procstat.CPUTime(a.PID())
	hub1, _ := procstat.CPUTime(b.hub.PID())
	p.clientCPU, p.hubCPU = agent1-agent0, hub1-hub0
	if p.cost, err = b.meter.Since(ctx, before); err != nil {
		return nil, err
	}
	if m, err = procstat.ReadMemory(a.PID()); err != nil {
		return nil, err
	}
	p.peak, p.end = m.HWM, m.RSS

	tasks, err := b.hub.Tasks(ctx, environment, ids)
	if err != nil {
		return nil, err
	}
	var failed []string
	var last time.Time
	for _, t := range tasks {
		if t.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED {
			failed = append(failed, fmt.Sprintf("%s %s: %s", t.GetId(), t.GetState(), t.GetError()))
			continue
		}
		p.releases++
		done := t.GetFinishedAt().AsTime()
		if done.After(last) {
			last = done
		}
		p.queued = append(p.queued, done.Sub(t.GetCreatedAt().AsTime()))
	}
	if len(failed) > 0 {
		return nil, fmt.Errorf("%d of %d releases failed, first: %s", len(failed), len(ids), failed[0])
	}
	p.wall = last.Sub(t0)
	for _, r := range records {
		p.latency = append(p.latency, r.duration)
		if !r.validated.IsZero() {
			start := r.done.Add(-r.duration)
			p.render = append(p.render, r.validated.Sub(start))
			p.apply = append(p.apply, r.done.Sub(r.validated))
		}
	}
	fmt.Fprintf(os.Stderr, "agent --concurrency %d: %d releases in %s = %.2f/s (executor p50 %s per release; peak RSS %s; load %s)\n",
		c, p.releases, stats.Secs(p.wall), p.rate(), stats.Secs(p.latency.Median()), stats.MiB(p.peak), p.load)
	return p, b.clean(ctx, append(l.namespaces(), warm)...)
}

// installTask is the EnqueueTask request of one helm install, with the
// chart inline, serialized on the release as the CLI does it. One attempt:
// a retry would hide a failure.
func (b *bench) installTask(environment, id, release, namespace string) (*outpostv1.EnqueueTaskRequest, error) {
	spec := taskspec.Helm{
		Action: taskspec.HelmInstall, Release: release, Namespace: namespace,
		Chart: &taskspec.HelmChart{Archive: b.chart.archive},
	}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("helm spec: %w", err)
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	return &outpostv1.EnqueueTaskRequest{
		Id: id, Environment: environment, Kind: taskspec.KindHelm, Spec: raw,
		ConflictKeys: []string{spec.ConflictKey()}, MaxAttempts: 1, Timeout: durationpb.New(taskTimeout),
	}, nil
}

// waitReported watches the agent's log from offset until it has reported
// a result for every task in ids (its "reported" record, written once the
// hub accepted the result), and returns the executor's records of them.
// Reading the log rather than polling the hub keeps the wait from adding
// load to the hub being measured.
func waitReported(ctx context.Context, a *outpostproc.Child, offset int64, ids map[string]bool) (map[string]*taskRecord, error) {
	deadline := time.Now().Add(passTimeout)
	for {
		records, reported, err := readAgentLog(a.LogPath, offset, ids)
		if err != nil {
			return nil, err
		}
		if reported == len(ids) {
			return records, nil
		}
		if err := a.Alive(); err != nil {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d tasks reported after %v: %s", reported, len(ids), passTimeout, procstat.Tail(a.LogPath, 10))
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// profilePath adds -c<N> before the extension of path.
func profilePath(path string, c int) string {
	ext := filepath.Ext(path)
	p, err := filepath.Abs(strings.TrimSuffix(path, ext) + fmt.Sprintf("-c%d", c) + ext)
	if err != nil {
		return path
	}
	return p
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
