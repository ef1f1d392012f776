package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/taskspec"
)

// loader enqueues a phase's tasks through the operator API.
type loader struct {
	op   *operator
	envs []string
	spec []byte
	rec  *recorder
}

func newLoader(op *operator, envs []string, endpoint string, rec *recorder) (*loader, error) {
	spec, err := json.Marshal(taskspec.HTTP{Method: "POST", URL: endpoint + "/v1/deploy", Body: `{"release":"bench"}`})
	if err != nil {
		return nil, err
	}
	if err := taskspec.Validate(taskspec.KindHTTP, spec); err != nil {
		return nil, fmt.Errorf("bench task spec: %w", err)
	}
	return &loader{op: op, envs: envs, spec: spec, rec: rec}, nil
}

// enqueue sends task i of p, to environment i mod N, timing the call. It
// reports whether the hub accepted the task.
func (l *loader) enqueue(ctx context.Context, p *phase, i int) bool {
	req := connect.NewRequest(&outpostv1.EnqueueTaskRequest{
		Id:          p.taskID(i),
		Environment: l.envs[i%len(l.envs)],
		Kind:        taskspec.KindHTTP,
		Spec:        l.spec,
	})
	p.enqStart[i].Store(now())
	if _, err := l.op.EnqueueTask(ctx, req); err != nil {
		if ctx.Err() == nil {
			p.enqErrors.Add(1)
		}
		return false
	}
	p.enqDone[i].Store(now())
	return true
}

// steady enqueues p's tasks at rate per second until they are all sent
// or window passes. Calls start on schedule (open loop): a goroutine per
// call, so a slow answer never delays the next call. When the hub falls so
// far behind that more than a second's worth of calls (at least 200) are
// in flight, or more than five seconds' worth of tasks wait for an agent,
// the phase stops early and reports saturated.
func (l *loader) steady(ctx context.Context, p *phase, rate int, window time.Duration) (sent int, saturated bool) {
	interval := time.Second / time.Duration(rate)
	maxInFlight := int64(max(rate, 200))
	maxBacklog := int64(max(5*rate, 1000))
	var inFlight, accepted atomic.Int64
	start := now()
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := range p.n {
		due := start + int64(i)*int64(interval)
		if time.Duration(due-start) >= window {
			break
		}
		if wait := time.Duration(due - now()); wait > 0 {
			select {
			case <-ctx.Done():
				return sent, false
			case <-time.After(wait):
			}
		}
		if inFlight.Load() > maxInFlight || accepted.Load()-p.completed.Load() > maxBacklog {
			return sent, true
		}
		p.scheduled[i] = due
		sent++
		inFlight.Add(1)
		wg.Go(func() {
			defer inFlight.Add(-1)
			if l.enqueue(ctx, p, i) {
				accepted.Add(1)
			}
		})
	}
	return sent, false
}

// burst enqueues p's tasks with callers calls back to back each, until
// they are all sent or window passes.
func (l *loader) burst(ctx context.Context, p *phase, callers int, window time.Duration) int {
	end := time.Now().Add(window)
	var next int
	var mu sync.Mutex
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if next >= p.n || time.Now().After(end) || ctx.Err() != nil {
			return 0, false
		}
		next++
		return next - 1, true
	}
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for {
				i, ok := take()
				if !ok {
					return
				}
				l.enqueue(ctx, p, i)
			}
		})
	}
	wg.Wait()
	return next
}

// drain waits until every enqueued task of p has its result recorded, or
// timeout passes.
func drain(ctx context.Context, p *phase, timeout time.Duration) {
	want := int64(0)
	for i := range p.n {
		if p.enqDone[i].Load() != 0 {
			want++
		}
	}
	deadline := time.Now().Add(timeout)
	for p.completed.Load() < want && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
}

// taskCounts counts the tenant's tasks by state through ListTasks.
func (op *operator) taskCounts(ctx context.Context) (map[outpostv1.TaskState]int, error) {
	counts := map[outpostv1.TaskState]int{}
	page := ""
	for {
		resp, err := op.ListTasks(ctx, connect.NewRequest(&outpostv1.ListTasksRequest{Limit: 500, PageToken: page}))
		if err != nil {
			return nil, fmt.Errorf("list tasks: %w", err)
		}
		for _, t := range resp.Msg.GetTasks() {
			counts[t.GetState()]++
		}
		if page = resp.Msg.GetNextPageToken(); page == "" {
			return counts, nil
		}
	}
}
