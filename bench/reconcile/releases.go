package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sync/errgroup"

	"github.com/outposthq/outpost/bench/internal/outpostproc"
	"github.com/outposthq/outpost/bench/internal/procstat"
	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/taskspec"
)

// The desired values the edits change and the reconciler must restore.
const (
	desiredImage = "registry.example/app:1.0"
	configKey    = "greeting"
	desiredValue = "hello"
)

// release is one benchmark release: a ConfigMap, a Deployment and a
// Service, all named after it, in namespace.
type release struct {
	name, namespace string
}

func (r release) configMap() string { return r.name + "-config" }

// releases returns n releases spread round-robin over namespaces.
func releases(n int, namespaces []string) []release {
	out := make([]release, n)
	for i := range out {
		out[i] = release{name: fmt.Sprintf("rel-%04d", i), namespace: namespaces[i%len(namespaces)]}
	}
	return out
}

// bundle returns the release's objects as multi-document YAML. The
// Service is headless: envtest's Service CIDR has room for 254 cluster
// IPs only.
func (r release) bundle() string {
	return fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: %[1]s-config
data:
  %[2]s: %[3]s
  mode: production
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  labels: {app: %[1]s}
spec:
  replicas: 1
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      containers:
      - name: app
        image: %[4]s
        ports:
        - containerPort: 8080
        envFrom:
        - configMapRef: {name: %[1]s-config}
---
apiVersion: v1
kind: Service
metadata:
  name: %[1]s
spec:
  clusterIP: None
  selector: {app: %[1]s}
  ports:
  - name: http
    port: 80
    targetPort: 8080
`, r.name, configKey, desiredValue, desiredImage)
}

// request returns the ApplyRelease request of r, as `outpost release
// apply` builds it for a release file with an inline bundle.
func (r release) request() (*outpostv1.ApplyReleaseRequest, error) {
	spec := taskspec.Manifests{Release: r.name, Namespace: r.namespace, Bundle: r.bundle()}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("release %s: %w", r.name, err)
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	return &outpostv1.ApplyReleaseRequest{
		Environment: environment, Name: r.name, Kind: taskspec.KindManifests, Spec: b,
		Mode: outpostv1.ReleaseMode_RELEASE_MODE_CORRECT, Description: "bench/reconcile",
	}, nil
}

// applyAll applies every release with at most concurrency calls in flight.
func applyAll(ctx context.Context, hub *outpostproc.Hub, rels []release, concurrency int) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for _, r := range rels {
		g.Go(func() error {
			req, err := r.request()
			if err != nil {
				return err
			}
			resp, err := hub.Operator.ApplyRelease(ctx, connect.NewRequest(req))
			if err != nil {
				return fmt.Errorf("apply release %s: %w", r.name, err)
			}
			if got := resp.Msg.GetRevision().GetRevision(); got != 1 {
				return fmt.Errorf("apply release %s: revision %d, want 1 (a fresh hub)", r.name, got)
			}
			return nil
		})
	}
	return g.Wait()
}

// waitApplied polls ListReleases until every release of the environment
// is at applied revision 1, failing on a release error or when the agent
// exits.
func waitApplied(ctx context.Context, hub *outpostproc.Hub, agent *outpostproc.Child, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	applied := 0
	for time.Now().Before(deadline) {
		if err := agent.Alive(); err != nil {
			return err
		}
		resp, err := hub.Operator.ListReleases(ctx, connect.NewRequest(&outpostv1.ListReleasesRequest{Environment: environment}))
		if err != nil {
			return fmt.Errorf("list releases: %w", err)
		}
		applied = 0
		for _, r := range resp.Msg.GetReleases() {
			if r.GetAppliedRevision() == 1 {
				applied++
			}
			if e := r.GetLastError(); e != "" {
				return fmt.Errorf("release %s: %s", r.GetName(), e)
			}
		}
		if applied == n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return fmt.Errorf("%d of %d releases applied after %v: %s", applied, n, timeout, procstat.Tail(agent.LogPath, 10))
}
