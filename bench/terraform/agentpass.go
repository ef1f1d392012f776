package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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
	// taskTimeout bounds each task.
	taskTimeout = 10 * time.Minute
	// settle is how long the agent idles after connecting before its idle
	// RSS is read.
	settle = 3 * time.Second
)

// environment is the one the agent serves.
const environment = "tf"

// agentPass starts an agent, lets it idle, warms it up with one module,
// then enqueues every module's apply at once and waits until the agent has
// reported each, sampling its process tree's memory meanwhile.
func (b *bench) agentPass(ctx context.Context) (*pass, error) {
	dir := filepath.Join(b.tmp, "agent")
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o700); err != nil {
		return nil, err
	}
	c := b.cfg.concurrency
	a, err := outpostproc.StartAgent(ctx, outpostproc.AgentOptions{
		Bin: b.agentBin, Dir: dir, Hub: b.hub, Environment: environment, Kubeconfig: b.kubeconfig,
		Args: append([]string{
			"--concurrency", strconv.Itoa(c),
			"--tofu", b.cfg.tofu,
			"--terraform-namespace", b.cfg.agentNamespace,
			"--terraform-work-root", work,
		}, b.cfg.agentArgs...),
	})
	if err != nil {
		return nil, err
	}
	defer func() { _ = a.Stop() }()
	p := &pass{agent: true, concurrency: c, agentArgs: a.Args, agentVersion: a.Version}
	fmt.Fprintf(os.Stderr, "agent --concurrency %d: process %d connected; idling %v\n", c, a.PID(), settle)
	if err := sleep(ctx, settle); err != nil {
		return nil, err
	}
	m, err := procstat.ReadMemory(a.PID())
	if err != nil {
		return nil, err
	}
	p.idle = m.RSS

	// Warm-up: the page cache holding tofu, the agent's first task, the
	// hub's statements.
	warm := b.warmup()
	wreq, err := applyTask(warm, "tf-warmup")
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

	modules := b.measured()
	reqs := make([]*outpostv1.EnqueueTaskRequest, len(modules))
	ids := make(map[string]bool, len(modules))
	workspaces := []string{warm.Workspace}
	for i, m := range modules {
		if reqs[i], err = applyTask(m, fmt.Sprintf("tf-%03d", i)); err != nil {
			return nil, err
		}
		ids[reqs[i].GetId()] = true
		workspaces = append(workspaces, m.Workspace)
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
	child0, _ := childrenCPU(a.PID())
	hub0, _ := procstat.CPUTime(b.hub.PID())
	busy := procstat.StartBusy()
	sampler := sampleTree(ctx, a.PID(), b.cfg.sample)
	fmt.Fprintf(os.Stderr, "agent --concurrency %d: enqueueing %d terraform applies …\n", c, len(modules))

	t0 := time.Now()
	// Every task at once: one caller each.
	g, gctx := errgroup.WithContext(ctx)
	for _, req := range reqs {
		g.Go(func() error {
			if _, err := b.hub.Operator.EnqueueTask(gctx, connect.NewRequest(req)); err != nil {
				return fmt.Errorf("enqueue %s: %w", req.GetId(), err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		sampler.stop()
		return nil, err
	}
	p.enqueue = time.Since(t0)
	records, err := waitReported(ctx, a.Child, logStart, ids)
	p.samples = sampler.stop()
	if err != nil {
		return nil, err
	}
	if p.throttled, err = countThrottled(a.LogPath, logStart); err != nil {
		return nil, err
	}

	p.busy, p.load = busy.Share(), procstat.LoadAverage()
	agent1, _ := procstat.CPUTime(a.PID())
	child1, _ := childrenCPU(a.PID())
	hub1, _ := procstat.CPUTime(b.hub.PID())
	p.clientCPU, p.childCPU, p.hubCPU = agent1-agent0, child1-child0, hub1-hub0
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
		var r taskspec.TerraformResult
		if err := json.Unmarshal(t.GetResult(), &r); err != nil {
			return nil, fmt.Errorf("task %s: result: %w", t.GetId(), err)
		}
		if r.Plan.Add != b.cfg.resources || !r.Changed {
			return nil, fmt.Errorf("task %s created %d resources (changed %v), want %d: not a fresh apply", t.GetId(), r.Plan.Add, r.Changed, b.cfg.resources)
		}
		p.modules++
		done := t.GetFinishedAt().AsTime()
		if done.After(last) {
			last = done
		}
		p.queued = append(p.queued, done.Sub(t.GetCreatedAt().AsTime()))
	}
	if len(failed) > 0 {
		return nil, fmt.Errorf("%d of %d applies failed, first: %s", len(failed), len(ids), failed[0])
	}
	p.wall = last.Sub(t0)
	p.phases = map[string]stats.Sample{}
	for _, r := range records {
		p.latency = append(p.latency, r.cli())
		for name, d := range r.phases {
			p.phases[name] = append(p.phases[name], d)
		}
	}
	peakTree, _ := peakSample(p.samples)
	fmt.Fprintf(os.Stderr, "agent --concurrency %d: %d modules in %s (executor p50 %s per module; agent peak RSS %s, tree peak PSS %s; load %s)\n",
		c, p.modules, stats.Secs(p.wall), stats.Secs(p.latency.Median()), stats.MiB(p.peak), stats.MiB(peakTree.treePSS), p.load)
	return p, b.cleanState(ctx, b.cfg.agentNamespace, workspaces...)
}

// applyTask is the EnqueueTask request of one module's apply, with the
// module inline and its variables in the spec, as the CLI sends it. One
// attempt: a retry would hide a failure.
func applyTask(m *benchModule, id string) (*outpostv1.EnqueueTaskRequest, error) {
	spec := taskspec.Terraform{
		Action: taskspec.TerraformApply, Workspace: m.Workspace,
		Archive: m.Archive, Variables: m.Variables,
	}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("terraform spec: %w", err)
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	return &outpostv1.EnqueueTaskRequest{
		Id: id, Environment: environment, Kind: taskspec.KindTerraform, Spec: raw,
		ConflictKeys: []string{spec.ConflictKey()}, MaxAttempts: 1, Timeout: durationpb.New(taskTimeout),
	}, nil
}

// waitReported watches the agent's log from offset until it has reported
// a result for every task in ids (its "reported" record, written once the
// hub accepted the result), and returns the executor's records of them.
// Reading the log rather than polling the hub keeps the wait from adding
// load to the hub being measured.
func waitReported(ctx context.Context, a *outpostproc.Child, offset int64, ids map[string]bool) (map[string]*taskRecord, error) {
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
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return nil, fmt.Errorf("%d of %d tasks reported: %w: %s", reported, len(ids), err, procstat.Tail(a.LogPath, 10))
		}
	}
}

// peakSample returns the sample with the largest tree PSS and the largest
// number of tofu processes seen in any sample.
func peakSample(samples []treeSample) (peak treeSample, tofus int) {
	for _, s := range samples {
		if s.treePSS > peak.treePSS {
			peak = s
		}
		tofus = max(tofus, s.tofus)
	}
	return peak, tofus
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
