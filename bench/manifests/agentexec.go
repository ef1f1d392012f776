package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
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
	seq     atomic.Int64
	// lastOutcome summarizes the last result (object counts per outcome).
	mu          sync.Mutex
	lastOutcome string
}

// inlineLimit is the largest bundle sent inline in the spec; larger ones
// travel as an artifact, as the CLI and the hub require.
const inlineLimit = 256 << 10

func newAgentApplier(cfg *rest.Config) (*agentApplier, error) {
	ex, err := newManifestsExecutor(cfg)
	if err != nil {
		return nil, err
	}
	return &agentApplier{exec: ex, fetcher: &memFetcher{blobs: map[string][]byte{}}}, nil
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
