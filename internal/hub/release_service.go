package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/auth"
	"github.com/outposthq/outpost/internal/store"
	"github.com/outposthq/outpost/internal/taskspec"
)

// Limits on release input.
const (
	maxIgnoreRules     = 32
	maxIgnorePaths     = 32
	maxIgnorePathLen   = 256
	maxDescriptionLen  = 1024
	releaseTaskPrefix  = "rel-"
	releaseConflictKey = "release/"
	// failedTaskWindow is how far back environment status counts failed
	// tasks.
	failedTaskWindow = 24 * time.Hour
)

// releaseModes maps explicit modes; RELEASE_MODE_UNSPECIFIED takes the
// kind's default (store.DefaultMode).
var releaseModes = map[outpostv1.ReleaseMode]store.ReleaseMode{
	outpostv1.ReleaseMode_RELEASE_MODE_CORRECT: store.ModeCorrect,
	outpostv1.ReleaseMode_RELEASE_MODE_DETECT:  store.ModeDetect,
}

var releaseSyncs = map[store.ReleaseSync]outpostv1.ReleaseSync{
	store.SyncPending:          outpostv1.ReleaseSync_RELEASE_SYNC_PENDING,
	store.SyncInSync:           outpostv1.ReleaseSync_RELEASE_SYNC_IN_SYNC,
	store.SyncDrifted:          outpostv1.ReleaseSync_RELEASE_SYNC_DRIFTED,
	store.SyncFailed:           outpostv1.ReleaseSync_RELEASE_SYNC_FAILED,
	store.SyncDeleting:         outpostv1.ReleaseSync_RELEASE_SYNC_DELETING,
	store.SyncAwaitingApproval: outpostv1.ReleaseSync_RELEASE_SYNC_AWAITING_APPROVAL,
}

// releaseMode returns the mode m asks for a release of kind.
func releaseMode(m outpostv1.ReleaseMode, kind string) (store.ReleaseMode, error) {
	if m == outpostv1.ReleaseMode_RELEASE_MODE_UNSPECIFIED {
		return store.DefaultMode(kind), nil
	}
	mode, ok := releaseModes[m]
	if !ok {
		return "", invalid("unknown release mode %v", m)
	}
	return mode, nil
}

func modeToProto(m store.ReleaseMode) outpostv1.ReleaseMode {
	if m == store.ModeDetect {
		return outpostv1.ReleaseMode_RELEASE_MODE_DETECT
	}
	return outpostv1.ReleaseMode_RELEASE_MODE_CORRECT
}

// checkReleaseName validates a release name: a DNS label short enough for
// the names the agent derives from it.
func checkReleaseName(name string) error {
	if len(name) > taskspec.MaxReleaseLength || !namePattern.MatchString(name) {
		return invalid("release name %q must be 1-%d lowercase letters, digits or '-', starting and ending with a letter or digit", truncate(name, 64), taskspec.MaxReleaseLength)
	}
	return nil
}

// checkIgnore validates ignore rules and returns them as stored.
func checkIgnore(rules []*outpostv1.IgnoreRule) ([]store.IgnoreRule, error) {
	if len(rules) > maxIgnoreRules {
		return nil, invalid("at most %d ignore rules, got %d", maxIgnoreRules, len(rules))
	}
	out := make([]store.IgnoreRule, 0, len(rules))
	for i, r := range rules {
		if len(r.GetGroup()) > 253 || len(r.GetKind()) > 63 {
			return nil, invalid("ignore[%d]: group or kind too long", i)
		}
		if len(r.GetPaths()) == 0 || len(r.GetPaths()) > maxIgnorePaths {
			return nil, invalid("ignore[%d]: want 1 to %d paths", i, maxIgnorePaths)
		}
		for _, p := range r.GetPaths() {
			if err := checkPointer(p); err != nil {
				return nil, invalid("ignore[%d]: path %q: %v", i, truncate(p, 64), err)
			}
		}
		out = append(out, store.IgnoreRule{Group: r.GetGroup(), Kind: r.GetKind(), Paths: r.GetPaths()})
	}
	return out, nil
}

// checkPointer validates a JSON pointer (RFC 6901) naming a field.
func checkPointer(p string) error {
	switch {
	case len(p) > maxIgnorePathLen:
		return fmt.Errorf("longer than %d characters", maxIgnorePathLen)
	case !strings.HasPrefix(p, "/") || p == "/":
		return errors.New(`want a JSON pointer such as "/spec/replicas"`)
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "" {
			return errors.New("empty segment")
		}
		for i := 0; i < len(seg); i++ {
			if seg[i] == '~' && (i+1 == len(seg) || (seg[i+1] != '0' && seg[i+1] != '1')) {
				return errors.New("'~' must be written ~0, '/' inside a name ~1")
			}
			if seg[i] < 0x20 {
				return errors.New("control character")
			}
		}
	}
	return nil
}

// releaseSpec is a release's task spec, decoded per kind.
type releaseSpec interface {
	taskspec.Spec
	// forRevision returns the spec a task carrying revision rev runs.
	forRevision(rev int64) taskspec.Spec
	// removal returns the spec of the task that removes the release.
	removal() taskspec.Spec
	// removalNeedsArtifacts reports whether that task reads the
	// revision's artifacts (a terraform destroy plans with the module).
	removalNeedsArtifacts() bool
	conflictKey() string
}

type manifestsRelease struct{ taskspec.Manifests }

func (m *manifestsRelease) forRevision(rev int64) taskspec.Spec {
	s := m.Manifests
	s.Revision = rev
	return &s
}

func (m *manifestsRelease) removal() taskspec.Spec {
	return &taskspec.Manifests{Release: m.Release, Namespace: m.Namespace, Delete: true}
}

func (m *manifestsRelease) removalNeedsArtifacts() bool { return false }

func (m *manifestsRelease) conflictKey() string { return "manifests/" + m.Release }

type helmRelease struct{ taskspec.Helm }

func (h *helmRelease) forRevision(int64) taskspec.Spec { s := h.Helm; return &s }

func (h *helmRelease) removal() taskspec.Spec {
	return &taskspec.Helm{Action: taskspec.HelmUninstall, Release: h.Release, Namespace: h.Namespace, TimeoutSeconds: h.TimeoutSeconds}
}

func (h *helmRelease) removalNeedsArtifacts() bool { return false }

func (h *helmRelease) conflictKey() string { return h.ConflictKey() }

// terraformRelease is a terraform release: the module applied to the
// workspace named after the release.
type terraformRelease struct{ taskspec.Terraform }

func (tf *terraformRelease) forRevision(int64) taskspec.Spec { s := tf.Terraform; return &s }

// removal destroys the workspace's resources without waiting for an
// approval: deleting the release is the operator's explicit destroy.
func (tf *terraformRelease) removal() taskspec.Spec {
	s := tf.Terraform
	s.Action, s.Approval, s.ApprovedPlan = taskspec.TerraformDestroy, "", ""
	return &s
}

func (tf *terraformRelease) removalNeedsArtifacts() bool { return true }

func (tf *terraformRelease) conflictKey() string { return tf.ConflictKey() }

// approved returns the spec of the task that applies the plan whose
// digest an operator approved.
func (tf *terraformRelease) approved(digest string) taskspec.Spec {
	s := tf.Terraform
	s.ApprovedPlan = digest
	return &s
}

// decodeReleaseSpec decodes and validates the spec of a release of kind,
// filling in what the hub decides: a manifests release's name and revision,
// a helm release's action, a terraform release's workspace (one workspace
// per release, named after it).
func decodeReleaseSpec(name, kind string, raw []byte) (releaseSpec, error) {
	var rs releaseSpec
	switch kind {
	case taskspec.KindManifests:
		m := &manifestsRelease{}
		if err := decodeLoose(raw, &m.Manifests); err != nil {
			return nil, err
		}
		if m.Release != "" && m.Release != name {
			return nil, invalid("spec.release %q: a manifests release's objects carry the release name %q; leave it empty", m.Release, name)
		}
		if m.Delete {
			return nil, invalid("spec.delete: not allowed in a release; delete the release instead")
		}
		m.Release, m.Revision = name, 0
		rs = m
	case taskspec.KindHelm:
		h := &helmRelease{}
		if err := decodeLoose(raw, &h.Helm); err != nil {
			return nil, err
		}
		if a := h.EffectiveAction(); a != taskspec.HelmInstall {
			return nil, invalid("spec.action %q: a release installs or upgrades; use rollback and delete on the release for the rest", a)
		}
		h.Action = ""
		if h.Release == "" {
			h.Release = name
		}
		rs = h
	case taskspec.KindTerraform:
		tf := &terraformRelease{}
		if err := decodeLoose(raw, &tf.Terraform); err != nil {
			return nil, err
		}
		if err := fillTerraformRelease(name, &tf.Terraform); err != nil {
			return nil, err
		}
		rs = tf
	default:
		return nil, invalid("release kind %q: want %s, %s or %s", truncate(kind, 32), taskspec.KindManifests, taskspec.KindHelm, taskspec.KindTerraform)
	}
	if err := rs.Validate(); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("spec: %w", err))
	}
	return rs, nil
}

// fillTerraformRelease checks what a terraform release's spec may say and
// fills in the rest: it applies (destroy is deleting the release), on the
// workspace named after the release, and carries no approval.
func fillTerraformRelease(name string, s *taskspec.Terraform) error {
	switch a := s.EffectiveAction(); a {
	case taskspec.TerraformApply:
	case taskspec.TerraformDestroy:
		return invalid("spec.action %q: a release applies its module; delete the release to destroy its resources", a)
	case taskspec.TerraformPlan:
		return invalid("spec.action %q: a release applies its module; set approval: always to review every plan before it is applied", a)
	default:
		return invalid("spec.action %q: a release applies its module; leave the action empty", truncate(a, 32))
	}
	if s.Workspace != "" && s.Workspace != name {
		return invalid("spec.workspace %q: one workspace per release, named after it; leave it empty or set it to %q", truncate(s.Workspace, 64), name)
	}
	if s.ApprovedPlan != "" {
		return invalid("spec.approved_plan: set by the hub when an operator approves a plan (outpost release approve); leave it empty")
	}
	s.Action, s.Workspace = "", name
	return nil
}

// decodeLoose decodes a spec strictly (bounded, no unknown fields) without
// validating, so the hub can fill in its fields first.
func decodeLoose(raw []byte, v any) error {
	if err := taskspec.DecodeStrict(raw, v); err != nil {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("spec: %w", err))
	}
	return nil
}

// revisionDigest identifies a revision's content.
func revisionDigest(rev store.ReleaseRevision) (string, error) {
	doc, err := json.Marshal(struct {
		Kind      string             `json:"kind"`
		Spec      json.RawMessage    `json:"spec"`
		Artifacts []string           `json:"artifacts"`
		Mode      store.ReleaseMode  `json:"mode"`
		Ignore    []store.IgnoreRule `json:"ignore"`
	}{rev.Kind, rev.Spec, rev.Artifacts, rev.Mode, rev.Ignore})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(doc)
	return hex.EncodeToString(sum[:]), nil
}

// releaseTask builds the task carrying spec for a release.
func (s *operatorService) releaseTask(rev store.ReleaseRevision, rs releaseSpec, spec taskspec.Spec, artifacts []string) (store.Task, error) {
	return s.hubTask(store.Task{
		ID:            auth.NewID(releaseTaskPrefix + rev.Release + "-"),
		Tenant:        rev.Tenant,
		EnvironmentID: rev.EnvironmentID,
		Kind:          rev.Kind,
		ConflictKeys:  []string{releaseConflictKey + rev.Release, rs.conflictKey()},
		Artifacts:     artifacts,
	}, spec)
}

// hubTask completes a task the hub makes on an operator's behalf (for a
// release or a secret): spec encoded, queued now, the default attempts.
func (s *operatorService) hubTask(t store.Task, spec taskspec.Spec) (store.Task, error) {
	doc, err := json.Marshal(spec)
	if err != nil {
		return store.Task{}, connect.NewError(connect.CodeInternal, fmt.Errorf("encode %s task: %w", t.Kind, err))
	}
	now := s.h.opts.Now()
	t.Spec, t.MaxAttempts, t.State, t.CreatedAt, t.UpdatedAt = doc, DefaultMaxAttempts, store.StateQueued, now, now
	return t, nil
}

// apply stores rev (Spec, Artifacts, Mode, Ignore filled in) as the
// release's next revision unless it equals the newest.
func (s *operatorService) apply(ctx context.Context, rev store.ReleaseRevision, rs releaseSpec) (store.Release, store.ReleaseRevision, bool, error) {
	var err error
	if rev.Spec, err = json.Marshal(rs); err != nil {
		return store.Release{}, store.ReleaseRevision{}, false, connect.NewError(connect.CodeInternal, err)
	}
	if rev.Digest, err = revisionDigest(rev); err != nil {
		return store.Release{}, store.ReleaseRevision{}, false, connect.NewError(connect.CodeInternal, err)
	}
	rel, stored, created, err := s.h.store.ApplyRelease(ctx, store.ApplyReleaseParams{
		Revision: rev,
		Task: func(r store.ReleaseRevision) (store.Task, error) {
			return s.releaseTask(r, rs, rs.forRevision(r.Revision), r.Artifacts)
		},
		Now: s.h.opts.Now(),
	})
	if err != nil {
		return store.Release{}, store.ReleaseRevision{}, false, storeError(fmt.Sprintf("apply release %s", rev.Release), err)
	}
	if created {
		s.h.metrics.enqueued.Inc()
	}
	return rel, stored, created, nil
}

func (s *operatorService) ApplyRelease(ctx context.Context, req *connect.Request[outpostv1.ApplyReleaseRequest]) (*connect.Response[outpostv1.ApplyReleaseResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	m := req.Msg
	env, err := s.envByName(ctx, c, m.GetEnvironment())
	if err != nil {
		return nil, err
	}
	if err := checkReleaseName(m.GetName()); err != nil {
		return nil, err
	}
	mode, err := releaseMode(m.GetMode(), m.GetKind())
	if err != nil {
		return nil, err
	}
	ignore, err := checkIgnore(m.GetIgnore())
	if err != nil {
		return nil, err
	}
	if len(m.GetDescription()) > maxDescriptionLen {
		return nil, invalid("description longer than %d characters", maxDescriptionLen)
	}
	if err := s.checkArtifacts(ctx, c, m.GetArtifacts()); err != nil {
		return nil, err
	}
	rs, err := decodeReleaseSpec(m.GetName(), m.GetKind(), m.GetSpec())
	if err != nil {
		return nil, err
	}
	rel, rev, created, err := s.apply(ctx, store.ReleaseRevision{
		Tenant: c.token.Tenant, EnvironmentID: env.ID, Release: m.GetName(), Kind: m.GetKind(),
		Artifacts: m.GetArtifacts(), Mode: mode, Ignore: ignore,
		Description: m.GetDescription(), CreatedBy: c.actor(),
	}, rs)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&outpostv1.ApplyReleaseResponse{
		Release: releaseToProto(env.Name, rel), Revision: revisionToProto(env.Name, rev), Created: created,
	}), nil
}

func (s *operatorService) GetRelease(ctx context.Context, req *connect.Request[outpostv1.GetReleaseRequest]) (*connect.Response[outpostv1.GetReleaseResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	env, rel, err := s.release(ctx, c, req.Msg.GetEnvironment(), req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	rev, err := s.h.store.GetReleaseRevision(ctx, c.token.Tenant, env.ID, rel.Name, rel.Revision)
	if err != nil {
		return nil, storeError(fmt.Sprintf("release %s revision %d", rel.Name, rel.Revision), err)
	}
	return connect.NewResponse(&outpostv1.GetReleaseResponse{Release: releaseToProto(env.Name, rel), Revision: revisionToProto(env.Name, rev)}), nil
}

// release finds a release by environment and name.
func (s *operatorService) release(ctx context.Context, c operatorCaller, envName, name string) (store.Environment, store.Release, error) {
	env, err := s.envByName(ctx, c, envName)
	if err != nil {
		return store.Environment{}, store.Release{}, err
	}
	if err := checkReleaseName(name); err != nil {
		return store.Environment{}, store.Release{}, err
	}
	rel, err := s.h.store.GetRelease(ctx, c.token.Tenant, env.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return store.Environment{}, store.Release{}, connect.NewError(connect.CodeNotFound, fmt.Errorf("release %q not found in environment %s", name, env.Name))
	}
	if err != nil {
		return store.Environment{}, store.Release{}, storeError(fmt.Sprintf("release %s", name), err)
	}
	return env, rel, nil
}

func (s *operatorService) ListReleases(ctx context.Context, req *connect.Request[outpostv1.ListReleasesRequest]) (*connect.Response[outpostv1.ListReleasesResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	envID, err := s.envIDIfNamed(ctx, c, req.Msg.GetEnvironment())
	if err != nil {
		return nil, err
	}
	rels, err := s.h.store.ListReleases(ctx, c.token.Tenant, envID)
	if err != nil {
		return nil, storeError("list releases", err)
	}
	resp := &outpostv1.ListReleasesResponse{}
	for _, r := range rels {
		resp.Releases = append(resp.Releases, releaseToProto(s.h.envName(ctx, r.EnvironmentID), r))
	}
	return connect.NewResponse(resp), nil
}

func (s *operatorService) ListReleaseRevisions(ctx context.Context, req *connect.Request[outpostv1.ListReleaseRevisionsRequest]) (*connect.Response[outpostv1.ListReleaseRevisionsResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	env, rel, err := s.release(ctx, c, req.Msg.GetEnvironment(), req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	revs, err := s.h.store.ListReleaseRevisions(ctx, c.token.Tenant, env.ID, rel.Name)
	if err != nil {
		return nil, storeError(fmt.Sprintf("release %s history", rel.Name), err)
	}
	resp := &outpostv1.ListReleaseRevisionsResponse{}
	for _, r := range revs {
		resp.Revisions = append(resp.Revisions, revisionToProto(env.Name, r))
	}
	return connect.NewResponse(resp), nil
}

func (s *operatorService) GetReleaseRevision(ctx context.Context, req *connect.Request[outpostv1.GetReleaseRevisionRequest]) (*connect.Response[outpostv1.GetReleaseRevisionResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	env, _, rev, err := s.releaseRevision(ctx, c, req.Msg.GetEnvironment(), req.Msg.GetName(), req.Msg.GetRevision())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&outpostv1.GetReleaseRevisionResponse{Revision: revisionToProto(env.Name, rev)}), nil
}

// releaseRevision finds a release and one of its revisions.
func (s *operatorService) releaseRevision(ctx context.Context, c operatorCaller, envName, name string, n int64) (store.Environment, store.Release, store.ReleaseRevision, error) {
	env, rel, err := s.release(ctx, c, envName, name)
	if err != nil {
		return env, rel, store.ReleaseRevision{}, err
	}
	rev, err := s.revision(ctx, env, rel, n)
	return env, rel, rev, err
}

func (s *operatorService) revision(ctx context.Context, env store.Environment, rel store.Release, n int64) (store.ReleaseRevision, error) {
	if n < 1 || n > rel.Revision {
		return store.ReleaseRevision{}, connect.NewError(connect.CodeNotFound, fmt.Errorf("release %s has revisions 1 to %d, not %d", rel.Name, rel.Revision, n))
	}
	rev, err := s.h.store.GetReleaseRevision(ctx, rel.Tenant, env.ID, rel.Name, n)
	if err != nil {
		return store.ReleaseRevision{}, storeError(fmt.Sprintf("release %s revision %d", rel.Name, n), err)
	}
	return rev, nil
}

func (s *operatorService) RollbackRelease(ctx context.Context, req *connect.Request[outpostv1.RollbackReleaseRequest]) (*connect.Response[outpostv1.RollbackReleaseResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	env, rel, old, err := s.releaseRevision(ctx, c, req.Msg.GetEnvironment(), req.Msg.GetName(), req.Msg.GetToRevision())
	if err != nil {
		return nil, err
	}
	rs, err := decodeReleaseSpec(rel.Name, old.Kind, old.Spec)
	if err != nil {
		return nil, err
	}
	// Artifacts may have been collected since; the task would fail late.
	if err := s.checkArtifacts(ctx, c, old.Artifacts); err != nil {
		return nil, err
	}
	rel, rev, _, err := s.apply(ctx, store.ReleaseRevision{
		Tenant: c.token.Tenant, EnvironmentID: env.ID, Release: rel.Name, Kind: old.Kind,
		Artifacts: old.Artifacts, Mode: old.Mode, Ignore: old.Ignore,
		Description: fmt.Sprintf("rollback to %d", old.Revision), CreatedBy: c.actor(), RolledBackFrom: old.Revision,
	}, rs)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&outpostv1.RollbackReleaseResponse{Release: releaseToProto(env.Name, rel), Revision: revisionToProto(env.Name, rev)}), nil
}

func (s *operatorService) DeleteRelease(ctx context.Context, req *connect.Request[outpostv1.DeleteReleaseRequest]) (*connect.Response[outpostv1.DeleteReleaseResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	env, rel, err := s.release(ctx, c, req.Msg.GetEnvironment(), req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	// The newest revision names where the objects are (a helm release's
	// namespace); the agent's inventory knows the rest. A terraform
	// release is destroyed with the module of its applied revision, whose
	// configuration matches its state. It is read here, since the task
	// builder runs inside the store's transaction.
	number := rel.Revision
	if rel.Kind == taskspec.KindTerraform && rel.AppliedRevision > 0 {
		number = rel.AppliedRevision
	}
	rev, err := s.revision(ctx, env, rel, number)
	if err != nil {
		return nil, err
	}
	rs, err := decodeReleaseSpec(rel.Name, rev.Kind, rev.Spec)
	if err != nil {
		return nil, err
	}
	var artifacts []string
	if rs.removalNeedsArtifacts() {
		artifacts = rev.Artifacts
	}
	rel, err = s.h.store.DeleteRelease(ctx, store.DeleteReleaseParams{
		Tenant: c.token.Tenant, EnvironmentID: env.ID, Name: rel.Name, Actor: c.actor(), Now: s.h.opts.Now(),
		Task: func(store.Release) (store.Task, error) { return s.releaseTask(rev, rs, rs.removal(), artifacts) },
	})
	if err != nil {
		return nil, storeError(fmt.Sprintf("delete release %s", req.Msg.GetName()), err)
	}
	return connect.NewResponse(&outpostv1.DeleteReleaseResponse{Release: releaseToProto(env.Name, rel)}), nil
}

func (s *operatorService) GetEnvironmentStatus(ctx context.Context, req *connect.Request[outpostv1.GetEnvironmentStatusRequest]) (*connect.Response[outpostv1.GetEnvironmentStatusResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	env, err := s.envByName(ctx, c, req.Msg.GetEnvironment())
	if err != nil {
		return nil, err
	}
	resp := &outpostv1.GetEnvironmentStatusResponse{Environment: &outpostv1.Environment{Tenant: env.Tenant, Name: env.Name, CreatedAt: ts(env.CreatedAt)}}
	agents, err := s.h.store.ListAgents(ctx, c.token.Tenant, env.ID)
	if err != nil {
		return nil, storeError("environment status", err)
	}
	for _, a := range agents {
		resp.Agents = append(resp.Agents, s.h.agentToProto(ctx, a))
		if !a.Disabled {
			resp.Environment.Agents++
		}
	}
	rels, err := s.h.store.ListReleases(ctx, c.token.Tenant, env.ID)
	if err != nil {
		return nil, storeError("environment status", err)
	}
	for _, r := range rels {
		resp.Releases = append(resp.Releases, releaseToProto(env.Name, r))
	}
	active, failed, err := s.h.store.TaskCounts(ctx, c.token.Tenant, env.ID, s.h.opts.Now().Add(-failedTaskWindow))
	if err != nil {
		return nil, storeError("environment status", err)
	}
	resp.ActiveTasks, resp.FailedTasks = clampInt32(active), clampInt32(failed)
	keys, err := s.h.store.ListEnvironmentKeys(ctx, c.token.Tenant, env.ID)
	if err != nil {
		return nil, storeError("environment status", err)
	}
	for _, k := range keys {
		resp.Keys = append(resp.Keys, keyToProto(k))
	}
	secrets, err := s.h.store.ListSecrets(ctx, c.token.Tenant, env.ID)
	if err != nil {
		return nil, storeError("environment status", err)
	}
	for _, v := range secrets {
		resp.Secrets = append(resp.Secrets, secretToProto(env.Name, v))
	}
	return connect.NewResponse(resp), nil
}

func clampInt32(n int) int32 {
	return int32(min(n, 1<<31-1)) //nolint:gosec // clamped
}

func releaseToProto(envName string, r store.Release) *outpostv1.Release {
	p := &outpostv1.Release{
		Tenant:          r.Tenant,
		Environment:     envName,
		Name:            r.Name,
		Kind:            r.Kind,
		Revision:        r.Revision,
		AppliedRevision: r.AppliedRevision,
		Sync:            releaseSyncs[r.Sync],
		LastError:       r.LastError,
		DriftCorrected:  r.DriftCorrected,
		DriftAt:         ts(r.DriftAt),
		TaskId:          r.TaskID,
		Mode:            modeToProto(r.Mode),
		CreatedAt:       ts(r.CreatedAt),
		UpdatedAt:       ts(r.UpdatedAt),
	}
	for _, d := range r.Drift {
		p.Drift = append(p.Drift, &outpostv1.ObjectDrift{
			Group: d.Group, Version: d.Version, Kind: d.Kind, Namespace: d.Namespace, Name: d.Name, Deleted: d.Deleted, Fields: d.Fields,
			Address: d.Address,
		})
	}
	return p
}

func revisionToProto(envName string, r store.ReleaseRevision) *outpostv1.ReleaseRevision {
	p := &outpostv1.ReleaseRevision{
		Environment:    envName,
		Release:        r.Release,
		Revision:       r.Revision,
		Kind:           r.Kind,
		Spec:           r.Spec,
		Artifacts:      r.Artifacts,
		Mode:           modeToProto(r.Mode),
		Digest:         r.Digest,
		Description:    r.Description,
		CreatedBy:      r.CreatedBy,
		CreatedAt:      ts(r.CreatedAt),
		RolledBackFrom: r.RolledBackFrom,
		Plan:           planToProto(r.Plan),
		Outputs:        r.Outputs,
	}
	for _, ig := range r.Ignore {
		p.Ignore = append(p.Ignore, &outpostv1.IgnoreRule{Group: ig.Group, Kind: ig.Kind, Paths: ig.Paths})
	}
	return p
}

func planToProto(p *store.PlanSummary) *outpostv1.PlanSummary {
	if p == nil {
		return nil
	}
	out := &outpostv1.PlanSummary{
		Add: clampInt32(p.Add), Change: clampInt32(p.Change), Destroy: clampInt32(p.Destroy),
		HasChanges: p.HasChanges, Digest: p.Digest, Omitted: clampInt32(p.Omitted),
	}
	for _, r := range p.Resources {
		out.Resources = append(out.Resources, &outpostv1.ResourceChange{Address: r.Address, Action: r.Action})
	}
	return out
}

// ApproveRelease lets the plan a terraform release awaits be applied: a
// new task for the same revision whose spec carries the approved digest,
// so the agent applies its fresh plan only if it is the one reviewed.
func (s *operatorService) ApproveRelease(ctx context.Context, req *connect.Request[outpostv1.ApproveReleaseRequest]) (*connect.Response[outpostv1.ApproveReleaseResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	m := req.Msg
	if m.GetRevision() < 1 {
		return nil, invalid("revision: want the revision awaiting approval (1 or more), got %d", m.GetRevision())
	}
	digest := m.GetPlanDigest()
	if !taskspec.IsPlanDigest(digest) {
		return nil, invalid("plan_digest %q: want %s followed by 64 lower-case hex digits, as the plan awaiting approval shows it", truncate(digest, 80), taskspec.PlanDigestPrefix)
	}
	env, rel, err := s.release(ctx, c, m.GetEnvironment(), m.GetName())
	if err != nil {
		return nil, err
	}
	if rel.Kind != taskspec.KindTerraform {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("release %s is a %s release: only terraform releases have plans to approve", rel.Name, rel.Kind))
	}
	rev, err := s.revision(ctx, env, rel, m.GetRevision())
	if err != nil {
		return nil, err
	}
	rs, err := decodeReleaseSpec(rel.Name, rev.Kind, rev.Spec)
	if err != nil {
		return nil, err
	}
	tf, ok := rs.(*terraformRelease)
	if !ok {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("release %s revision %d: not a terraform spec", rel.Name, rev.Revision))
	}
	if err := s.checkArtifacts(ctx, c, rev.Artifacts); err != nil {
		return nil, err
	}
	sync := rel.Sync
	rel, task, err := s.h.store.ApproveRelease(ctx, store.ApproveReleaseParams{
		Tenant: c.token.Tenant, EnvironmentID: env.ID, Name: rel.Name, Revision: rev.Revision, PlanDigest: digest,
		Actor: c.actor(), Now: s.h.opts.Now(),
		// The store checked that the revision is still rev: revisions
		// never change, so rev's spec is the one to approve.
		Task: func(r store.ReleaseRevision) (store.Task, error) {
			return s.releaseTask(r, rs, tf.approved(digest), r.Artifacts)
		},
	})
	switch {
	case errors.Is(err, store.ErrPlanChanged):
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
			"approve release %s: the plan changed since you reviewed it (revision %d, plan %s): review the new plan (outpost release approve %s shows it)", m.GetName(), m.GetRevision(), digest, m.GetName()))
	case errors.Is(err, store.ErrNotAwaitingApproval):
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("approve release %s: no plan is awaiting approval (the release is %s)", m.GetName(), sync))
	case err != nil:
		return nil, storeError(fmt.Sprintf("approve release %s", m.GetName()), err)
	}
	s.h.metrics.enqueued.Inc()
	return connect.NewResponse(&outpostv1.ApproveReleaseResponse{Release: releaseToProto(env.Name, rel), TaskId: task.ID}), nil
}
