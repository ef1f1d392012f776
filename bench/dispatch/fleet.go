package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/outposthq/outpost/bench/internal/outpostproc"
	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
	"github.com/outposthq/outpost/internal/agent"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/redact"
	"github.com/outposthq/outpost/internal/taskspec"
	"github.com/outposthq/outpost/internal/transport"
)

// noopExecutor stands in for the http executor: it returns an empty
// result at once, so that the benchmark times the hub, not an endpoint.
type noopExecutor struct{}

var _ executor.Executor = noopExecutor{}

func (noopExecutor) Execute(context.Context, executor.Task) (json.RawMessage, error) {
	return json.RawMessage(`{}`), nil
}

// observer watches an agent's calls to the hub: it reports when the Watch
// stream is open and which task results the hub accepted.
type observer struct {
	next      http.RoundTripper
	rec       *recorder
	watchOnce sync.Once
	watching  chan struct{}
}

func (o *observer) RoundTrip(req *http.Request) (*http.Response, error) {
	o.rec.countCall(req.URL.Path)
	switch {
	case strings.HasSuffix(req.URL.Path, "/ReportResult"):
		return o.report(req)
	case strings.HasSuffix(req.URL.Path, "/Watch"):
		resp, err := o.next.RoundTrip(req)
		if err == nil && resp.StatusCode == http.StatusOK {
			o.watchOnce.Do(func() { close(o.watching) })
		}
		return resp, err
	}
	return o.next.RoundTrip(req)
}

// report passes a ReportResult call on and records its task when the hub
// answers OK (Connect unary errors have other statuses).
func (o *observer) report(req *http.Request) (*http.Response, error) {
	if req.Body == nil {
		return o.next.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	if err != nil {
		return nil, err
	}
	clone := req.Clone(req.Context())
	clone.Body = io.NopCloser(bytes.NewReader(body))
	clone.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	resp, err := o.next.RoundTrip(clone)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	var m outpostv1.ReportResultRequest
	if proto.Unmarshal(body, &m) == nil && m.GetOutcome() == outpostv1.Outcome_OUTCOME_SUCCEEDED {
		o.rec.resultRecorded(m.GetTaskId())
	}
	return resp, nil
}

// fleet is N agents, one per environment, running in this process.
type fleet struct {
	envs    []string // environment names, index = agent number
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	failed  atomic.Int64
	errMu   sync.Mutex
	lastErr error
}

func envName(i int) string { return fmt.Sprintf("e%04d", i) }

// operator is the benchmark's operator API client: the hub's, with the
// calls the benchmark makes of it.
type operator struct {
	outpostv1connect.OperatorServiceClient
}

// bootstrapTokens creates n environments and a bootstrap token for each.
func (op *operator) bootstrapTokens(ctx context.Context, n int) ([]string, error) {
	tokens := make([]string, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range n {
		g.Go(func() error {
			name := envName(i)
			if _, err := op.CreateEnvironment(gctx, connect.NewRequest(&outpostv1.CreateEnvironmentRequest{Name: name})); err != nil {
				return fmt.Errorf("create environment %s: %w", name, err)
			}
			resp, err := op.CreateBootstrapToken(gctx, connect.NewRequest(&outpostv1.CreateBootstrapTokenRequest{
				Environment: name, Ttl: durationpb.New(time.Hour),
			}))
			if err != nil {
				return fmt.Errorf("bootstrap token for %s: %w", name, err)
			}
			tokens[i] = resp.Msg.GetToken()
			return nil
		})
	}
	return tokens, g.Wait()
}

// startFleet enrolls and starts one agent per token, stagger at a time,
// each batch waiting until its agents hold their Watch stream.
func startFleet(ctx context.Context, h *outpostproc.Hub, tokens []string, dir string, cfg config, rec *recorder, log *slog.Logger) (*fleet, error) {
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f := &fleet{cancel: cancel}
	for i := range tokens {
		f.envs = append(f.envs, envName(i))
	}
	for lo := 0; lo < len(tokens); lo += cfg.stagger {
		hi := min(lo+cfg.stagger, len(tokens))
		var ready []chan struct{}
		for i := lo; i < hi; i++ {
			w, err := f.startAgent(actx, h, i, tokens[i], dir, cfg, rec, log)
			if err != nil {
				f.Stop()
				return nil, err
			}
			ready = append(ready, w)
		}
		deadline := time.After(90 * time.Second)
		for j, w := range ready {
			select {
			case <-w:
			case <-deadline:
				f.Stop()
				err := fmt.Errorf("agent %d did not open its Watch stream within 90s", lo+j)
				if f.failed.Load() > 0 {
					err = fmt.Errorf("%w (%d agents failed; last: %w)", err, f.failed.Load(), f.err())
				}
				return nil, err
			case <-ctx.Done():
				f.Stop()
				return nil, ctx.Err()
			}
		}
	}
	return f, nil
}

func (f *fleet) startAgent(ctx context.Context, h *outpostproc.Hub, i int, token, dir string, cfg config, rec *recorder, log *slog.Logger) (chan struct{}, error) {
	client, err := transport.NewClient(transport.Options{CAFile: h.CAFile})
	if err != nil {
		return nil, err
	}
	obs := &observer{next: client.Transport, rec: rec, watching: make(chan struct{})}
	client.Transport = obs
	a, err := agent.New(agent.Options{
		HubURL:          h.URL,
		HTTPClient:      client,
		Identity:        agent.FileIdentity{Path: filepath.Join(dir, "agents", envName(i), "identity.json")},
		BootstrapToken:  token,
		Environment:     outpostproc.Tenant + "/" + envName(i),
		Executors:       map[string]executor.Executor{taskspec.KindHTTP: noopExecutor{}},
		Concurrency:     cfg.concurrency,
		NewRedactor:     func() agent.Redactor { return redact.New() },
		Logger:          log.With("agent", i),
		Version:         "bench",
		Hostname:        fmt.Sprintf("bench-%04d", i),
		OnExecutorStart: rec.executorStarted,
	})
	if err != nil {
		return nil, fmt.Errorf("agent %d: %w", i, err)
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer client.CloseIdleConnections()
		if err := a.Start(ctx); err != nil && !errors.Is(err, context.Canceled) {
			f.failed.Add(1)
			f.errMu.Lock()
			f.lastErr = fmt.Errorf("agent %d: %w", i, err)
			f.errMu.Unlock()
		}
	}()
	return obs.watching, nil
}

func (f *fleet) err() error {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	return f.lastErr
}

// Stop stops every agent and waits for them.
func (f *fleet) Stop() {
	f.cancel()
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
	}
}
