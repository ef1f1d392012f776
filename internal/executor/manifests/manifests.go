package manifests

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	authorizationv1client "k8s.io/client-go/kubernetes/typed/authorization/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/manifests/bundle"
	"github.com/outposthq/outpost/internal/taskspec"
)

// Ownership labels and the field manager.
const (
	// FieldManager owns the fields the executor applies.
	FieldManager = "outpost"
	// LabelRelease names the release that owns an object.
	LabelRelease = "outpost.dev/release"
	// LabelRevision names the revision that last wrote an object.
	LabelRevision = "outpost.dev/revision"
)

// Log field names.
const (
	logTask     = "task"
	logAttempt  = "attempt"
	logRelease  = "release"
	logRevision = "revision"
	logObjects  = "objects"
	logPhase    = "phase"
	logDuration = "duration"
	logCreated  = "created"
	logChanged  = "configured"
	logSame     = "unchanged"
	logPruned   = "pruned"
	logDeleted  = "deleted"
	logSkipped  = "skipped"
)

// Executor runs manifests tasks. It is safe for concurrent use; tasks of
// the same release must be serialized by the caller (the agent's keyed
// lock), and the inventory's optimistic concurrency stops a stale attempt
// that races on anyway.
type Executor struct {
	dynamic   dynamic.Interface
	metadata  metadata.Interface
	secrets   corev1client.SecretsGetter
	access    authorizationv1client.SelfSubjectAccessReviewsGetter
	mapper    *restmapper.DeferredDiscoveryRESTMapper
	agentNS   string
	log       *slog.Logger
	limits    bundle.Limits
	deny      []Rule
	allowPriv bool
	parallel  int
	establish time.Duration
	now       func() time.Time
	// clock tracks the API server's clock, for the no-change check.
	clock *serverClock
	// listPage and listBudget are listPageSize and listBudget; tests
	// lower them.
	listPage, listBudget int
}

var _ executor.Executor = (*Executor)(nil)

// New returns an Executor whose clients share one connection pool and one
// discovery cache.
func New(opts Options) (*Executor, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	cfg := rest.CopyConfig(opts.Config)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = DefaultQPS, DefaultBurst
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultRequestTimeout
	}
	clock := &serverClock{}
	cfg.Wrap(clock.wrap)
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("manifests: kubernetes client: %w", err)
	}
	return newWithClient(opts, cfg, httpClient, clock)
}

func newWithClient(opts Options, cfg *rest.Config, httpClient *http.Client, clock *serverClock) (*Executor, error) {
	dyn, err := dynamic.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("manifests: kubernetes client: %w", err)
	}
	meta, err := metadata.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("manifests: kubernetes client: %w", err)
	}
	core, err := corev1client.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("manifests: kubernetes client: %w", err)
	}
	authz, err := authorizationv1client.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("manifests: kubernetes client: %w", err)
	}
	disco, err := discovery.NewDiscoveryClientForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("manifests: kubernetes client: %w", err)
	}
	return &Executor{
		dynamic:    dyn,
		metadata:   meta,
		secrets:    core,
		access:     authz,
		mapper:     restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco)),
		agentNS:    opts.AgentNamespace,
		log:        opts.Logger,
		limits:     bundle.Limits{MaxBytes: opts.MaxBundleBytes, MaxObjects: opts.MaxObjects},
		deny:       slices.Clone(opts.Deny),
		allowPriv:  opts.AllowPrivileged,
		parallel:   opts.Parallelism,
		establish:  opts.EstablishTimeout,
		now:        opts.Now,
		clock:      clock,
		listPage:   listPageSize,
		listBudget: listBudget,
	}, nil
}

// run is the state of one Execute call.
type run struct {
	task     executor.Task
	spec     taskspec.Manifests
	inv      *inventory
	rec      *record
	revision int64
	digest   string
	targets  []*target
	// prune lists the objects of earlier revisions this one lacks.
	prune []*pruneItem
	// snap is a pending snapshot of this task reused from an earlier
	// attempt, nil on a first attempt.
	snap *pending
	// mayList holds the groups of objects the agent may LIST (see
	// observe).
	mayList map[listKey]bool
}

// Execute applies the bundle of a manifests task. See the package
// documentation for the order of the steps. Validation failures, denied
// permissions and objects the API server rejects are terminal; timeouts,
// server errors and lost races are retryable.
func (e *Executor) Execute(ctx context.Context, t executor.Task) (json.RawMessage, error) {
	start := e.now()
	r := &run{task: t}
	if err := taskspec.Decode(t.Spec, &r.spec); err != nil {
		return nil, executor.Terminal(fmt.Errorf("manifests: %w", err))
	}
	if r.spec.Delete {
		return e.deleteRelease(ctx, r, start)
	}
	data, err := e.bundleBytes(ctx, t, &r.spec)
	if err != nil {
		return nil, err
	}
	objs, err := bundle.Decode(data, e.limits)
	if err != nil {
		return nil, executor.Terminal(fmt.Errorf("manifests: %w: %w", ErrInvalidBundle, err))
	}
	r.digest = specDigest(&r.spec, data)
	r.inv = e.inventory(r.spec.Release)

	if r.rec, err = r.inv.load(ctx); err != nil {
		return nil, err
	}
	if err := fence(r.rec, t.ID, t.Attempt); err != nil {
		return nil, err
	}
	if c := r.rec.committed; c != nil && c.TaskID == t.ID && len(c.Result) > 0 {
		// An earlier attempt committed and its report was lost: report
		// the same result again without touching anything.
		e.log.LogAttrs(ctx, slog.LevelInfo, "manifests task already committed", slog.String(logTask, t.ID), slog.Int64(logAttempt, t.Attempt), slog.String(logRelease, r.spec.Release), slog.Int64(logRevision, c.Revision))
		return c.Result, nil
	}
	if p := r.rec.pending; p != nil && p.TaskID == t.ID {
		r.snap = p
	}
	r.revision = r.pickRevision()

	if r.targets, err = e.resolve(ctx, objs, r.spec.Namespace); err != nil {
		return nil, err
	}
	if err := e.checkDeny(r.targets); err != nil {
		return nil, err
	}
	for _, tg := range r.targets {
		tg.label(r.spec.Release, r.revision)
	}
	r.prune = r.pruneCandidates()
	if err := e.checkAccess(ctx, r); err != nil {
		return nil, err
	}
	if err := e.observe(ctx, r); err != nil {
		return nil, err
	}
	dry, err := e.dryRun(ctx, r.targets)
	if err != nil {
		return nil, err
	}
	e.log.LogAttrs(ctx, slog.LevelInfo, "manifests bundle validated", slog.String(logTask, t.ID), slog.Int64(logAttempt, t.Attempt),
		slog.String(logRelease, r.spec.Release), slog.Int64(logRevision, r.revision), slog.Int(logObjects, len(r.targets)),
		slog.Duration(logDuration, e.now().Sub(start)))

	if err := e.claim(ctx, r); err != nil {
		return nil, err
	}
	res := &Result{Release: r.spec.Release, Revision: r.revision, Objects: []ObjectResult{}}
	deferred, err := e.applyAll(ctx, r)
	if err != nil {
		return nil, err
	}
	res.DryRun = DryRun{OK: true, Objects: dry + deferred, Deferred: deferred}
	if err := e.pruneAll(ctx, r); err != nil {
		return nil, err
	}
	for _, tg := range r.targets {
		res.add(tg.ref, tg.outcome, tg.reason)
	}
	for _, p := range r.prune {
		res.add(p.ref, p.outcome, p.reason)
	}
	doc, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("manifests: encode result: %w", err)
	}
	if err := e.commit(ctx, r, doc); err != nil {
		return nil, err
	}
	e.log.LogAttrs(ctx, slog.LevelInfo, "manifests task applied", slog.String(logTask, t.ID), slog.Int64(logAttempt, t.Attempt),
		slog.String(logRelease, r.spec.Release), slog.Int64(logRevision, r.revision),
		slog.Int(logCreated, res.Counts.Created), slog.Int(logChanged, res.Counts.Configured), slog.Int(logSame, res.Counts.Unchanged),
		slog.Int(logPruned, res.Counts.Pruned), slog.Int(logSkipped, res.Counts.Skipped), slog.Duration(logDuration, e.now().Sub(start)))
	return doc, nil
}

// inventory returns the inventory of release.
func (e *Executor) inventory(release string) *inventory {
	return &inventory{secrets: e.secrets.Secrets(e.agentNS), namespace: e.agentNS, name: inventoryPrefix + release, release: release}
}

// bundleBytes returns the inline bundle or reads the artifact to its end,
// checking that it is one of the task's and that it verified on Close.
func (e *Executor) bundleBytes(ctx context.Context, t executor.Task, spec *taskspec.Manifests) ([]byte, error) {
	if spec.Artifact == "" {
		return []byte(spec.Bundle), nil
	}
	data, err := executor.ReadArtifact(ctx, t, spec.Artifact, e.limits.MaxBytes)
	switch {
	case errors.Is(err, executor.ErrArtifactTooLarge):
		return nil, executor.Terminal(fmt.Errorf("manifests: %w: %w; split the release", ErrInvalidBundle, err))
	case err != nil:
		return nil, fmt.Errorf("manifests: %w: %w", ErrArtifact, err)
	}
	return data, nil
}

// specDigest identifies what a task asks for, whatever its task ID.
func specDigest(spec *taskspec.Manifests, data []byte) string {
	h := sha256.New()
	for _, s := range []string{spec.Release, spec.Namespace, strconv.FormatBool(spec.Adopt), strconv.FormatBool(spec.PruneEnabled()), strconv.FormatInt(spec.Revision, 10)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// pickRevision returns the revision of this task: the spec's, the one an
// earlier attempt recorded, the committed one when the content is the
// same, or the next.
func (r *run) pickRevision() int64 {
	switch {
	case r.spec.Revision > 0:
		return r.spec.Revision
	case r.snap != nil:
		return r.snap.Revision
	case r.rec.committed == nil:
		return 1
	case r.rec.committed.Digest == r.digest:
		return r.rec.committed.Revision
	}
	return r.rec.committed.Revision + 1
}
