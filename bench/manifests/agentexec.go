package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/redact"
	"github.com/outposthq/outpost/internal/taskspec"
)

// agentApplier runs bundles through the manifests executor in this
// process, the way the agent hands it a task: a spec, the bundle as an
// artifact (served from memory here, from the hub in the agent), a fresh
// redactor per task.
type agentApplier struct {
	exec    executor.Executor
	fetcher *memFetcher
	phases  *phaseLog
	seq     atomic.Int64
	// lastOutcome summarizes the last result (object counts per outcome).
	mu          sync.Mutex
	lastOutcome string
}

// inlineLimit is the largest bundle sent inline in the spec; larger ones
// travel as an artifact, as the CLI and the hub require.
const inlineLimit = 256 << 10

func newAgentApplier(cfg *rest.Config) (*agentApplier, error) {
	phases := &phaseLog{}
	ex, err := newManifestsExecutor(cfg, slog.New(phases))
	if err != nil {
		return nil, err
	}
	return &agentApplier{exec: ex, fetcher: &memFetcher{blobs: map[string][]byte{}}, phases: phases}, nil
}

// apply applies b as release and returns the time Execute took.
func (a *agentApplier) apply(ctx context.Context, release string, b *bundle) (time.Duration, error) {
	data := b.stream()
	spec := taskspec.Manifests{Release: release, Namespace: b.namespace}
	var artifacts []string
	if len(data) > inlineLimit {
		spec.Artifact = a.fetcher.put(data)
		artifacts = []string{spec.Artifact}
	} else {
		spec.Bundle = string(data)
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return 0, err
	}
	task := executor.Task{
		ID:        fmt.Sprintf("bench-%d", a.seq.Add(1)),
		Kind:      taskspec.KindManifests,
		Spec:      raw,
		Attempt:   1,
		Artifacts: artifacts,
		Fetcher:   a.fetcher,
		Redact:    redact.New(),
	}
	t0 := time.Now()
	res, err := a.exec.Execute(ctx, task)
	d := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("manifests executor, release %s: %w", release, err)
	}
	a.mu.Lock()
	a.lastOutcome = outcomeSummary(res)
	a.mu.Unlock()
	return d, nil
}

// phaseLog keeps the validation time the executor logs once it has
// validated a bundle (decode, discovery, access review, reading the live
// objects, dry-run), so the benchmark can tell it apart from the rest of an
// apply's wall time.
type phaseLog struct {
	mu        sync.Mutex
	validated time.Duration
}

var _ slog.Handler = (*phaseLog)(nil)

// msgValidated is the executor's log message the benchmark reads.
const msgValidated = "manifests bundle validated"

func (*phaseLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (p *phaseLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != msgValidated {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != "duration" {
			return true
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.validated = a.Value.Duration()
		return false
	})
	return nil
}

func (p *phaseLog) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *phaseLog) WithGroup(string) slog.Handler      { return p }

// lastValidated returns the validation time of the last task.
func (p *phaseLog) lastValidated() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.validated
}

// memFetcher serves artifacts from memory, checking the digest on Close
// as the agent's fetcher does.
type memFetcher struct {
	mu    sync.Mutex
	blobs map[string][]byte
}

var _ executor.ArtifactFetcher = (*memFetcher)(nil)

func (f *memFetcher) put(data []byte) string {
	sum := sha256.Sum256(data)
	d := "sha256:" + hex.EncodeToString(sum[:])
	f.mu.Lock()
	f.blobs[d] = data
	f.mu.Unlock()
	return d
}

func (f *memFetcher) Fetch(_ context.Context, digest string) (io.ReadCloser, error) {
	f.mu.Lock()
	data, ok := f.blobs[digest]
	f.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("artifact %s: not found", digest)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}
