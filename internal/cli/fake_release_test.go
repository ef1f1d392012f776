package cli

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/taskspec"
)

// fakeRelease is a release of the fake hub with its revisions, oldest
// first.
type fakeRelease struct {
	rel  *v1.Release
	revs []*v1.ReleaseRevision
}

func releaseKey(env, name string) string { return env + "/" + name }

// fakeDigest is the fake hub's revision digest: over kind, spec,
// artifacts, mode and ignore rules, as the real hub's.
func fakeDigest(r *v1.ReleaseRevision) string {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&v1.ReleaseRevision{
		Kind: r.GetKind(), Spec: r.GetSpec(), Artifacts: r.GetArtifacts(), Mode: r.GetMode(), Ignore: r.GetIgnore(),
	})
	if err != nil {
		panic(err) // a fixed message always marshals
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// webBundle is a bundle of release web: a Deployment of image tag, a
// Service, and a ConfigMap when withConfig.
func webBundle(tag string, withConfig bool) string {
	b := `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: web
          image: ghcr.io/example/web:` + tag + `
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  ports:
    - port: 80
`
	if withConfig {
		b += `---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-settings
  namespace: shop
data:
  LOG_LEVEL: debug
`
	}
	return b
}

func manifestsSpecJSON(name, bundle string) []byte {
	return []byte(fmt.Sprintf(`{"release":%q,"namespace":"shop","bundle":%q}`, name, bundle))
}

// seedReleases gives the fake hub three releases: prod/web (four
// revisions, the last a rollback, drifted and corrected), prod/shop (a
// helm release whose first apply failed) and staging/web (in sync).
func (h *fakeHub) seedReleases() {
	h.releases = map[string]*fakeRelease{}
	h.releaseProgress = map[string][]v1.ReleaseSync{}
	correct, detect := v1.ReleaseMode_RELEASE_MODE_CORRECT, v1.ReleaseMode_RELEASE_MODE_DETECT
	replicas := []*v1.IgnoreRule{{Group: "apps", Kind: "Deployment", Paths: []string{"/spec/replicas"}}}
	rev := func(env, name string, n int64, kind string, spec []byte, mode v1.ReleaseMode, ignore []*v1.IgnoreRule, desc string, at time.Duration) *v1.ReleaseRevision {
		r := &v1.ReleaseRevision{Environment: env, Release: name, Revision: n, Kind: kind, Spec: spec, Mode: mode, Ignore: ignore,
			Description: desc, CreatedBy: "alice", CreatedAt: ts(at)}
		r.Digest = fakeDigest(r)
		return r
	}
	web := []*v1.ReleaseRevision{
		rev("prod", "web", 1, "manifests", manifestsSpecJSON("web", webBundle("1.0.0", false)), correct, nil, "first cut", -72*time.Hour),
		rev("prod", "web", 2, "manifests", manifestsSpecJSON("web", webBundle("1.1.0", false)), correct, nil, "1.1.0", -48*time.Hour),
		rev("prod", "web", 3, "manifests", manifestsSpecJSON("web", webBundle("1.2.0", true)), detect, replicas, "1.2.0 with settings", -24*time.Hour),
	}
	rollback := proto.CloneOf(web[1])
	rollback.Revision, rollback.RolledBackFrom, rollback.Description, rollback.CreatedBy, rollback.CreatedAt = 4, 2, "", "bob", ts(-time.Hour)
	web = append(web, rollback)
	h.releases[releaseKey("prod", "web")] = &fakeRelease{revs: web, rel: &v1.Release{
		Tenant: fakeTenant, Environment: "prod", Name: "web", Kind: "manifests", Revision: 4, AppliedRevision: 4,
		Sync: v1.ReleaseSync_RELEASE_SYNC_DRIFTED, Mode: correct, TaskId: "rt-web-4",
		Drift: []*v1.ObjectDrift{
			{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "shop", Name: "web",
				Fields: []string{"spec.template.spec.containers[name=web].image", "spec.replicas"}},
			{Version: "v1", Kind: "Service", Namespace: "shop", Name: "web", Deleted: true},
		},
		DriftCorrected: true, DriftAt: ts(-5 * time.Minute), CreatedAt: ts(-72 * time.Hour), UpdatedAt: ts(-5 * time.Minute),
	}}
	shopSpec := []byte(`{"release":"shop","namespace":"shop","chart":{"repository":"https://charts.example","name":"shop","version":"2.0.1"},"values":{"replicas":3}}`)
	h.releases[releaseKey("prod", "shop")] = &fakeRelease{
		revs: []*v1.ReleaseRevision{rev("prod", "shop", 1, "helm", shopSpec, correct, nil, "", -30*time.Minute)},
		rel: &v1.Release{Tenant: fakeTenant, Environment: "prod", Name: "shop", Kind: "helm", Revision: 1,
			Sync: v1.ReleaseSync_RELEASE_SYNC_FAILED, Mode: correct, TaskId: "rt-shop-1",
			LastError: "helm install: timed out waiting for the condition", CreatedAt: ts(-30 * time.Minute), UpdatedAt: ts(-20 * time.Minute)},
	}
	h.releases[releaseKey("staging", "web")] = &fakeRelease{
		revs: []*v1.ReleaseRevision{rev("staging", "web", 1, "manifests", manifestsSpecJSON("web", webBundle("1.3.0", false)), correct, nil, "", -3*time.Hour)},
		rel: &v1.Release{Tenant: fakeTenant, Environment: "staging", Name: "web", Kind: "manifests", Revision: 1, AppliedRevision: 1,
			Sync: v1.ReleaseSync_RELEASE_SYNC_IN_SYNC, Mode: correct, TaskId: "rt-web-1", CreatedAt: ts(-3 * time.Hour), UpdatedAt: ts(-3 * time.Hour)},
	}
	h.keys = map[string][]*v1.EnvironmentKey{"prod": {
		{Version: 1, Recipient: "age1old", Fingerprint: strings.Repeat("0f", 32), Retired: true, RegisteredAt: ts(-60 * 24 * time.Hour), RegisteredBy: "agent:ag-2"},
		{Version: 2, Recipient: "age1new", Fingerprint: strings.Repeat("e1", 32), RegisteredAt: ts(-72 * time.Hour), RegisteredBy: "agent:ag-1"},
	}}
	h.secrets = map[string][]*v1.SecretInfo{"prod": {
		{Environment: "prod", Namespace: "shop", Name: "db", Keys: []string{"password"}, Version: 2, KeyVersion: 2},
		{Environment: "prod", Namespace: "shop", Name: "old", Version: 1, KeyVersion: 1, Deleted: true},
	}}
}

// scriptRelease makes GetRelease report these sync states for the
// release, one per call; the last one stays. In sync or drifted applies
// the wanted revision; unspecified removes the release.
func (h *fakeHub) scriptRelease(env, name string, states ...v1.ReleaseSync) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.releaseProgress[releaseKey(env, name)] = states
}

// appliedRequests returns copies of the ApplyRelease requests received.
func (h *fakeHub) appliedRequests() []*v1.ApplyReleaseRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*v1.ApplyReleaseRequest, len(h.applied))
	for i, r := range h.applied {
		out[i] = proto.CloneOf(r)
	}
	return out
}

// releaseSnapshot returns a copy of a release and its revisions.
func (h *fakeHub) releaseSnapshot(env, name string) (*v1.Release, []*v1.ReleaseRevision) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.releases[releaseKey(env, name)]
	if !ok {
		return nil, nil
	}
	revs := make([]*v1.ReleaseRevision, len(r.revs))
	for i, rev := range r.revs {
		revs[i] = proto.CloneOf(rev)
	}
	return proto.CloneOf(r.rel), revs
}

func (h *fakeHub) findEnv(name string) (*v1.Environment, error) {
	for _, e := range h.envs {
		if e.GetName() == name {
			return e, nil
		}
	}
	return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("environment %q not found", name))
}

func (h *fakeHub) release(env, name string) (*fakeRelease, error) {
	if r, ok := h.releases[releaseKey(env, name)]; ok {
		return r, nil
	}
	return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("release %q not found in environment %q", name, env))
}

// newRevision appends rev as the release's next revision and makes it
// the wanted one.
func (r *fakeRelease) newRevision(rev *v1.ReleaseRevision) {
	rev.Revision = int64(len(r.revs)) + 1
	rev.Digest = fakeDigest(rev)
	rev.CreatedBy, rev.CreatedAt = fakeTokenName, timestamppb.New(fakeNow)
	r.revs = append(r.revs, rev)
	r.rel.Revision, r.rel.Sync, r.rel.Mode = rev.GetRevision(), v1.ReleaseSync_RELEASE_SYNC_PENDING, rev.GetMode()
	r.rel.TaskId = fmt.Sprintf("rt-%s-%d", r.rel.GetName(), rev.GetRevision())
	r.rel.UpdatedAt = timestamppb.New(fakeNow)
}

func (h *fakeHub) ApplyRelease(_ context.Context, req *connect.Request[v1.ApplyReleaseRequest]) (*connect.Response[v1.ApplyReleaseResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	m := req.Msg
	h.applied = append(h.applied, proto.CloneOf(m))
	if _, err := h.findEnv(m.GetEnvironment()); err != nil {
		return nil, err
	}
	for _, d := range m.GetArtifacts() {
		if _, ok := h.artifacts[d]; !ok {
			return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("artifact %s was not uploaded", d))
		}
	}
	spec, err := normalizeReleaseSpec(m.GetName(), m.GetKind(), m.GetSpec())
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	rev := &v1.ReleaseRevision{Environment: m.GetEnvironment(), Release: m.GetName(), Kind: m.GetKind(), Spec: spec,
		Artifacts: m.GetArtifacts(), Mode: m.GetMode(), Ignore: m.GetIgnore(), Description: m.GetDescription()}
	r, err := h.release(m.GetEnvironment(), m.GetName())
	if err != nil {
		r = &fakeRelease{rel: &v1.Release{Tenant: fakeTenant, Environment: m.GetEnvironment(), Name: m.GetName(), Kind: m.GetKind(), CreatedAt: timestamppb.New(fakeNow)}}
		h.releases[releaseKey(m.GetEnvironment(), m.GetName())] = r
	}
	if r.rel.GetKind() != m.GetKind() {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("release %s is a %s release; delete it to make it %s", m.GetName(), r.rel.GetKind(), m.GetKind()))
	}
	if n := len(r.revs); n > 0 && r.revs[n-1].GetDigest() == fakeDigest(rev) {
		return connect.NewResponse(&v1.ApplyReleaseResponse{Release: proto.CloneOf(r.rel), Revision: proto.CloneOf(r.revs[n-1])}), nil
	}
	r.newRevision(rev)
	return connect.NewResponse(&v1.ApplyReleaseResponse{Release: proto.CloneOf(r.rel), Revision: proto.CloneOf(rev), Created: true}), nil
}

// normalizeReleaseSpec stores a release's spec as the hub does: a
// manifests spec carries the release's name and no revision, a helm spec
// no action (a release always installs or upgrades).
func normalizeReleaseSpec(name, kind string, spec []byte) ([]byte, error) {
	switch kind {
	case taskspec.KindManifests:
		var s taskspec.Manifests
		if err := taskspec.DecodeStrict(spec, &s); err != nil {
			return nil, err
		}
		s.Release, s.Revision = name, 0
		return json.Marshal(s)
	case taskspec.KindHelm:
		var s taskspec.Helm
		if err := taskspec.DecodeStrict(spec, &s); err != nil {
			return nil, err
		}
		if s.Action != "" && s.Action != taskspec.HelmInstall {
			return nil, fmt.Errorf("spec.action %q: a release installs or upgrades", s.Action)
		}
		s.Action = ""
		return json.Marshal(s)
	case taskspec.KindTerraform:
		var s taskspec.Terraform
		if err := taskspec.DecodeStrict(spec, &s); err != nil {
			return nil, err
		}
		if s.Action != "" || (s.Workspace != "" && s.Workspace != name) || s.ApprovedPlan != "" {
			return nil, fmt.Errorf("spec: a terraform release applies on its own workspace, unapproved")
		}
		s.Workspace = name
		return json.Marshal(s)
	}
	return nil, fmt.Errorf("release kind %q: want manifests, helm or terraform", kind)
}

func (h *fakeHub) GetRelease(_ context.Context, req *connect.Request[v1.GetReleaseRequest]) (*connect.Response[v1.GetReleaseResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	key := releaseKey(req.Msg.GetEnvironment(), req.Msg.GetName())
	r, err := h.release(req.Msg.GetEnvironment(), req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	if states := h.releaseProgress[key]; len(states) > 0 {
		if len(states) > 1 {
			h.releaseProgress[key] = states[1:]
		}
		switch r.rel.Sync = states[0]; r.rel.Sync {
		case v1.ReleaseSync_RELEASE_SYNC_UNSPECIFIED:
			delete(h.releases, key)
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("release %q not found", req.Msg.GetName()))
		case v1.ReleaseSync_RELEASE_SYNC_IN_SYNC, v1.ReleaseSync_RELEASE_SYNC_DRIFTED:
			r.rel.AppliedRevision = r.rel.GetRevision()
		case v1.ReleaseSync_RELEASE_SYNC_FAILED:
			r.rel.LastError = "apply: deployments.apps \"web\" is forbidden"
		}
	}
	return connect.NewResponse(&v1.GetReleaseResponse{Release: proto.CloneOf(r.rel), Revision: proto.CloneOf(r.revs[len(r.revs)-1])}), nil
}

func (h *fakeHub) ListReleases(_ context.Context, req *connect.Request[v1.ListReleasesRequest]) (*connect.Response[v1.ListReleasesResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	res := &v1.ListReleasesResponse{}
	for _, r := range h.releases {
		if env := req.Msg.GetEnvironment(); env == "" || r.rel.GetEnvironment() == env {
			res.Releases = append(res.Releases, proto.CloneOf(r.rel))
		}
	}
	slices.SortFunc(res.Releases, func(a, b *v1.Release) int {
		return cmp.Or(strings.Compare(a.GetEnvironment(), b.GetEnvironment()), strings.Compare(a.GetName(), b.GetName()))
	})
	return connect.NewResponse(res), nil
}

func (h *fakeHub) ListReleaseRevisions(_ context.Context, req *connect.Request[v1.ListReleaseRevisionsRequest]) (*connect.Response[v1.ListReleaseRevisionsResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	r, err := h.release(req.Msg.GetEnvironment(), req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	res := &v1.ListReleaseRevisionsResponse{}
	for _, rev := range slices.Backward(r.revs) {
		res.Revisions = append(res.Revisions, proto.CloneOf(rev))
	}
	return connect.NewResponse(res), nil
}

func (h *fakeHub) GetReleaseRevision(_ context.Context, req *connect.Request[v1.GetReleaseRevisionRequest]) (*connect.Response[v1.GetReleaseRevisionResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	r, err := h.release(req.Msg.GetEnvironment(), req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	n := req.Msg.GetRevision()
	if n < 1 || n > int64(len(r.revs)) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("release %s has no revision %d", req.Msg.GetName(), n))
	}
	return connect.NewResponse(&v1.GetReleaseRevisionResponse{Revision: proto.CloneOf(r.revs[n-1])}), nil
}

func (h *fakeHub) RollbackRelease(_ context.Context, req *connect.Request[v1.RollbackReleaseRequest]) (*connect.Response[v1.RollbackReleaseResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	r, err := h.release(req.Msg.GetEnvironment(), req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	n := req.Msg.GetToRevision()
	if n < 1 || n > int64(len(r.revs)) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("release %s has no revision %d", req.Msg.GetName(), n))
	}
	rev := proto.CloneOf(r.revs[n-1])
	rev.Description, rev.RolledBackFrom = fmt.Sprintf("rollback to %d", n), n
	r.newRevision(rev)
	return connect.NewResponse(&v1.RollbackReleaseResponse{Release: proto.CloneOf(r.rel), Revision: proto.CloneOf(rev)}), nil
}

func (h *fakeHub) DeleteRelease(_ context.Context, req *connect.Request[v1.DeleteReleaseRequest]) (*connect.Response[v1.DeleteReleaseResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	r, err := h.release(req.Msg.GetEnvironment(), req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	h.deleted = append(h.deleted, releaseKey(req.Msg.GetEnvironment(), req.Msg.GetName()))
	r.rel.Sync, r.rel.TaskId, r.rel.UpdatedAt = v1.ReleaseSync_RELEASE_SYNC_DELETING, "rt-"+r.rel.GetName()+"-delete", timestamppb.New(fakeNow)
	return connect.NewResponse(&v1.DeleteReleaseResponse{Release: proto.CloneOf(r.rel)}), nil
}

func (h *fakeHub) GetEnvironmentStatus(_ context.Context, req *connect.Request[v1.GetEnvironmentStatusRequest]) (*connect.Response[v1.GetEnvironmentStatusResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	name := req.Msg.GetEnvironment()
	env, err := h.findEnv(name)
	if err != nil {
		return nil, err
	}
	res := &v1.GetEnvironmentStatusResponse{Environment: proto.CloneOf(env), Keys: h.keys[name], Secrets: h.secrets[name]}
	for _, a := range h.agents {
		if a.GetEnvironment() == name {
			res.Agents = append(res.Agents, a)
		}
	}
	for _, r := range h.releases {
		if r.rel.GetEnvironment() == name {
			res.Releases = append(res.Releases, proto.CloneOf(r.rel))
		}
	}
	slices.SortFunc(res.Releases, func(a, b *v1.Release) int { return strings.Compare(a.GetName(), b.GetName()) })
	for _, t := range h.tasks {
		if t.GetEnvironment() != name {
			continue
		}
		switch t.GetState() {
		case v1.TaskState_TASK_STATE_QUEUED, v1.TaskState_TASK_STATE_LEASED:
			res.ActiveTasks++
		case v1.TaskState_TASK_STATE_FAILED:
			res.FailedTasks++
		}
	}
	return connect.NewResponse(res), nil
}
