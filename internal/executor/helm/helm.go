package helm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/kube"
	release "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/helm/chartsource"
	"github.com/outposthq/outpost/internal/kube/access"
	"github.com/outposthq/outpost/internal/taskspec"
)

// fieldManager is the server-side apply field manager of every object a
// helm task writes. It is Helm's own, so a release first installed with the
// helm CLI changes hands without field conflicts.
const fieldManager = "helm"

// dryRunFieldManager is the field manager of the executor's dry runs; see
// validateObjects.
const dryRunFieldManager = "outpost-dry-run"

// Labels on each release record (Helm's custom release labels).
const (
	labelTask    = "outpost.dev/task"
	labelAttempt = "outpost.dev/attempt"
)

// Log keys.
const (
	logTask      = "task"
	logAttempt   = "attempt"
	logRelease   = "release"
	logNamespace = "namespace"
	logAction    = "action"
	logRevision  = "revision"
	logPhase     = "phase"
	logDuration  = "duration"
	logObjects   = "objects"
	logSource    = "source"
)

// rememberAccess is how long an allowed SelfSubjectAccessReview answer is
// reused: a burst of releases of the same kinds asks once.
const rememberAccess = 30 * time.Second

var setFieldManager sync.Once

// Executor runs helm tasks. It is safe for concurrent use; tasks on the
// same release must be serialized by the caller (the hub's conflict key
// helm/<namespace>/<release> and the agent's keyed lock do that).
type Executor struct {
	opts    Options
	log     *slog.Logger
	clients *clusterClients
	dynamic dynamic.Interface
	meta    metadata.Interface
	kube    kubernetes.Interface
	charts  *chartsource.Fetcher
	access  *access.Checker
}

var _ executor.Executor = (*Executor)(nil)

// New returns an Executor for opts.
func New(opts Options) (*Executor, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	cfg := rest.CopyConfig(opts.Config)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = DefaultQPS, DefaultBurst
	}
	clients, err := newClusterClients(cfg)
	if err != nil {
		return nil, fmt.Errorf("helm: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("helm: %w", err)
	}
	md, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("helm: %w", err)
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("helm: %w", err)
	}
	charts, err := chartsource.New(chartsource.Options{HTTPClient: opts.HTTPClient, MaxChartBytes: opts.MaxChartBytes, Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("helm: %w", err)
	}
	checker, err := access.NewChecker(access.CheckerOptions{Client: kc.AuthorizationV1(), Parallelism: opts.Parallelism, Remember: rememberAccess})
	if err != nil {
		return nil, fmt.Errorf("helm: %w", err)
	}
	// Helm takes its field manager from a package variable; every helm
	// task of this process uses the same one.
	setFieldManager.Do(func() { kube.ManagedFieldsManager = fieldManager })
	return &Executor{opts: opts, log: opts.Logger, clients: clients, dynamic: dyn, meta: md, kube: kc, charts: charts, access: checker}, nil
}

// run is one attempt of one task.
type run struct {
	task    executor.Task
	spec    taskspec.Helm
	cfg     *action.Configuration
	tracker *tracker
	start   time.Time
}

func (r *run) logAttrs(extra ...slog.Attr) []slog.Attr {
	return append([]slog.Attr{
		slog.String(logTask, r.task.ID), slog.Int64(logAttempt, r.task.Attempt),
		slog.String(logRelease, r.spec.Release), slog.String(logNamespace, r.spec.Namespace),
		slog.String(logAction, r.spec.EffectiveAction()),
	}, extra...)
}

// Execute runs one helm task. Invalid specs and charts, denied
// permissions, collisions and objects the API server rejects are terminal;
// timeouts, server errors and unreachable repositories are retryable.
func (e *Executor) Execute(ctx context.Context, t executor.Task) (json.RawMessage, error) {
	r := &run{task: t, start: time.Now()}
	if err := taskspec.Decode(t.Spec, &r.spec); err != nil {
		return nil, executor.Terminal(fmt.Errorf("helm: %w", err))
	}
	cfg, tr, err := e.configuration(r.spec.Release, r.spec.Namespace, r.spec.Waits())
	if err != nil {
		return nil, err
	}
	r.cfg, r.tracker = cfg, tr
	var res *Result
	switch r.spec.EffectiveAction() {
	case taskspec.HelmInstall, taskspec.HelmUpgrade:
		res, err = e.deploy(ctx, r)
	case taskspec.HelmRollback:
		res, err = e.rollback(ctx, r)
	case taskspec.HelmUninstall:
		res, err = e.uninstall(ctx, r)
	default:
		res, err = e.status(ctx, r)
	}
	if err != nil {
		e.log.LogAttrs(ctx, slog.LevelWarn, "helm task failed", r.logAttrs(slog.String(logPhase, PhaseOf(err)), slog.Duration(logDuration, time.Since(r.start)))...)
		return nil, err
	}
	doc, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("helm: encode result: %w", err)
	}
	e.log.LogAttrs(ctx, slog.LevelInfo, "helm task done", r.logAttrs(slog.Int(logRevision, res.Revision), slog.Int(logObjects, len(res.Objects)), slog.Duration(logDuration, time.Since(r.start)))...)
	return doc, nil
}

// configuration returns a Helm action configuration for namespace whose
// Kubernetes client is wrapped by a tracker.
func (e *Executor) configuration(release, namespace string, waits bool) (*action.Configuration, *tracker, error) {
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	if err := cfg.Init(e.clients.forNamespace(namespace), namespace, "secret"); err != nil {
		return nil, nil, fmt.Errorf("helm: configure: %w", err)
	}
	kc, ok := cfg.KubeClient.(*kube.Client)
	if !ok {
		return nil, nil, fmt.Errorf("helm: configure: unexpected client %T", cfg.KubeClient)
	}
	kc.Namespace = namespace
	tr := newTracker(kc, release, namespace, waits)
	cfg.KubeClient = tr
	return cfg, tr, nil
}

// fail wraps err as a failure of phase.
func (r *run) fail(phase string, err error) error {
	pe := &PhaseError{Release: r.spec.Namespace + "/" + r.spec.Release, Phase: phase, Err: err}
	if executor.IsTerminal(err) {
		return executor.Terminal(pe)
	}
	return pe
}

// last returns the newest record of the release, or nil when there is
// none.
func (r *run) last() (*release.Release, error) {
	rel, err := r.cfg.Releases.Last(r.spec.Release)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read release records: %w", err)
	}
	return asRelease(rel)
}

// asRelease converts Helm's release interface to the v1 release.
func asRelease(rel any) (*release.Release, error) {
	switch v := rel.(type) {
	case *release.Release:
		return v, nil
	case release.Release:
		return &v, nil
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("unexpected release record %T", rel)
}

// doneBefore reports whether rel is the revision this task already made:
// an earlier attempt finished, and its report was lost.
func (r *run) doneBefore(rel *release.Release) bool {
	return rel != nil && rel.Labels[labelTask] == r.task.ID && rel.Info != nil && !rel.Info.Status.IsPending()
}

// releaseLabels marks the revision this attempt makes.
func (r *run) releaseLabels() map[string]string {
	return map[string]string{labelTask: r.task.ID, labelAttempt: strconv.FormatInt(r.task.Attempt, 10)}
}

// timeout returns the task's timeout.
func (r *run) timeout() time.Duration { return time.Duration(r.spec.Timeout()) * time.Second }

// waitStrategy returns Helm's wait strategy for the task: full readiness
// when it waits, otherwise only hooks.
func (r *run) waitStrategy() kube.WaitStrategy {
	if r.spec.Waits() {
		return kube.StatusWatcherStrategy
	}
	return kube.HookOnlyStrategy
}

// waitOptions makes Helm's waits end with ctx.
func waitOptions(ctx context.Context) []kube.WaitOption {
	return []kube.WaitOption{kube.WithWaitContext(ctx)}
}
