package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/backoff"
	"github.com/outposthq/outpost/internal/taskspec"
)

// flakyReporter fails while down and records what it got.
type flakyReporter struct {
	mu   sync.Mutex
	down bool
	got  []Drift
}

func (f *flakyReporter) ReportDrift(_ context.Context, d Drift) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errors.New("hub unreachable")
	}
	f.got = append(f.got, d)
	return nil
}

func (f *flakyReporter) set(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

func (f *flakyReporter) reports() []Drift {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Drift(nil), f.got...)
}

func TestReportsAreCoalescedWhileTheHubIsDown(t *testing.T) {
	rep := &flakyReporter{down: true}
	q := newReportQueue(rep, backoff.Policy{Base: time.Millisecond, Max: 5 * time.Millisecond}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); q.run(ctx) }()
	defer func() { cancel(); <-done }()

	obj := func(name string) []ObjectDrift { return []ObjectDrift{{Kind: "ConfigMap", Name: name}} }
	q.push(Drift{Release: "web", Objects: obj("a")})
	q.push(Drift{Release: "web", Objects: obj("a"), Corrected: true})
	q.push(Drift{Release: "web", Objects: obj("b"), Corrected: true})
	q.push(Drift{Release: "web", Objects: obj("c")})
	q.push(Drift{Release: "api"})
	rep.set(false)

	deadline := time.Now().Add(10 * time.Second)
	for len(rep.reports()) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("reports %+v, want 3", rep.reports())
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := rep.reports()
	byRelease := map[string][]Drift{}
	for _, d := range got {
		byRelease[d.Release] = append(byRelease[d.Release], d)
	}
	web := byRelease["web"]
	if len(web) != 2 || !web[0].Corrected || len(web[0].Objects) != 2 || web[1].Corrected || web[1].Objects[0].Name != "c" {
		t.Errorf("web reports %+v: want the two corrections merged, then only the latest state", web)
	}
	if len(byRelease["api"]) != 1 {
		t.Errorf("api reports %+v, want 1", byRelease["api"])
	}
}

func TestReleaseValidate(t *testing.T) {
	tests := []struct {
		name string
		rel  Release
		ok   bool
	}{
		{name: "a manifests release with its spec is valid", rel: Release{Name: "web", Kind: KindManifests, Revision: 1, Manifests: manifestsSpec()}, ok: true},
		{name: "a manifests release without a revision is refused", rel: Release{Name: "web", Kind: KindManifests, Manifests: manifestsSpec()}},
		{name: "a spec of another revision is refused", rel: Release{Name: "web", Kind: KindManifests, Revision: 2, Manifests: func() *taskspec.Manifests { s := manifestsSpec(); s.Revision = 1; return s }()}},
		{name: "a helm release with its reference is valid", rel: Release{Name: "web", Kind: KindHelm, Helm: &HelmRef{Namespace: "app", ReleaseName: "web"}}, ok: true},
		{name: "a release without a name is refused", rel: Release{Kind: KindManifests, Revision: 1, Manifests: manifestsSpec()}},
		{name: "an unknown kind is refused", rel: Release{Name: "web", Kind: "kustomize"}},
		{name: "an unknown mode is refused", rel: Release{Name: "web", Kind: KindManifests, Revision: 1, Mode: "fix", Manifests: manifestsSpec()}},
		{name: "an ignore path that is no JSON pointer is refused", rel: Release{Name: "web", Kind: KindManifests, Revision: 1, Manifests: manifestsSpec(), Ignore: []IgnoreRule{{Paths: []string{"spec.replicas"}}}}},
		{name: "an artifact without its bytes is refused", rel: Release{Name: "web", Kind: KindManifests, Revision: 1, Manifests: withArtifact(manifestsSpec())}},
		{name: "a helm release without a namespace is refused", rel: Release{Name: "web", Kind: KindHelm, Helm: &HelmRef{ReleaseName: "web"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rel.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidRelease) {
				t.Errorf("%v does not wrap ErrInvalidRelease", err)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	o := Options{}
	if err := o.Validate(); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("no Config: %v, want ErrInvalidOptions", err)
	}
}

func withArtifact(s *taskspec.Manifests) *taskspec.Manifests {
	s.Bundle, s.Artifact = "", "sha256:00"
	return s
}

func manifestsSpec() *taskspec.Manifests {
	return &taskspec.Manifests{Release: "web", Namespace: "app", Bundle: "{}"}
}
