package helm

import (
	"errors"
	"io"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"helm.sh/helm/v4/pkg/kube"
)

// Phases of a task, named in its errors.
const (
	PhaseFetch    = "fetch"
	PhaseVerify   = "verify"
	PhaseRender   = "render"
	PhaseValidate = "validate"
	PhaseApply    = "apply"
	PhaseWait     = "wait"
)

// PhaseError is a failure of one phase of a helm task.
type PhaseError struct {
	Release string
	Phase   string
	Err     error
}

func (e *PhaseError) Error() string {
	return "helm " + e.Release + ": " + e.Phase + ": " + e.Err.Error()
}

func (e *PhaseError) Unwrap() error { return e.Err }

// PhaseOf returns the phase err failed in, or "" when it is not a
// PhaseError.
func PhaseOf(err error) string {
	var pe *PhaseError
	if errors.As(err, &pe) {
		return pe.Phase
	}
	return ""
}

// tracker wraps Helm's Kubernetes client to learn which phase the action is
// in (a write means apply, waiting for readiness means wait) and what
// happened to each object.
type tracker struct {
	kube.Interface
	waitOptions kube.InterfaceWaitOptions

	// rendering is set while Helm renders the release as a dry run: the
	// executor only needs the rendered manifests then, and objects of a
	// CRD the chart brings cannot be built before the CRD is installed.
	rendering bool

	// release is labelled on every object Helm builds, except the
	// release's namespace when Helm creates it.
	release, namespace string

	// waits says whether the task waits for readiness; without it Helm's
	// Wait is a no-op and must not move the phase.
	waits bool

	mu    sync.Mutex
	phase string
	// failed is the phase of the first call that failed: an atomic task
	// rolls back after a failed wait, and the rollback's own calls must
	// not hide where the task failed.
	failed  string
	created kube.ResourceList
	updated kube.ResourceList
	deleted kube.ResourceList
}

var (
	_ kube.Interface            = (*tracker)(nil)
	_ kube.InterfaceWaitOptions = (*tracker)(nil)
)

func newTracker(c *kube.Client, release, namespace string, waits bool) *tracker {
	return &tracker{Interface: c, waitOptions: c, release: release, namespace: namespace, waits: waits, phase: PhaseApply}
}

func (t *tracker) enter(phase string) {
	t.mu.Lock()
	t.phase = phase
	t.mu.Unlock()
}

// current returns the phase the first failed call was in, or else the
// phase the action was last in.
func (t *tracker) current() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failed != "" {
		return t.failed
	}
	return t.phase
}

// done notes the outcome of a call made in the current phase.
func (t *tracker) done(err error) error {
	if err != nil {
		t.mu.Lock()
		if t.failed == "" {
			t.failed = t.phase
		}
		t.mu.Unlock()
	}
	return err
}

func (t *tracker) record(res *kube.Result) {
	if res == nil {
		return
	}
	t.mu.Lock()
	t.created = append(t.created, res.Created...)
	t.updated = append(t.updated, res.Updated...)
	t.deleted = append(t.deleted, res.Deleted...)
	t.mu.Unlock()
}

// Build turns manifests into resources and labels them, except while
// rendering, when Helm's dry run gets none: the executor validates the
// rendered objects itself.
func (t *tracker) Build(r io.Reader, validate bool) (kube.ResourceList, error) {
	t.mu.Lock()
	rendering := t.rendering
	t.mu.Unlock()
	if rendering {
		return kube.ResourceList{}, nil
	}
	list, err := t.Interface.Build(r, validate)
	if err != nil {
		return nil, err
	}
	for _, info := range list {
		if info.Mapping != nil && info.Mapping.GroupVersionKind.Kind == "Namespace" && info.Name == t.namespace {
			continue
		}
		labelObject(info.Object, t.release)
	}
	return list, nil
}

func (t *tracker) setRendering(on bool) {
	t.mu.Lock()
	t.rendering = on
	t.mu.Unlock()
}

func (t *tracker) Create(resources kube.ResourceList, options ...kube.ClientCreateOption) (*kube.Result, error) {
	t.enter(PhaseApply)
	res, err := t.Interface.Create(resources, options...)
	t.record(res)
	return res, t.done(err)
}

func (t *tracker) Update(original, target kube.ResourceList, options ...kube.ClientUpdateOption) (*kube.Result, error) {
	t.enter(PhaseApply)
	res, err := t.Interface.Update(original, target, options...)
	t.record(res)
	return res, t.done(err)
}

func (t *tracker) Delete(resources kube.ResourceList, policy metav1.DeletionPropagation) (*kube.Result, []error) {
	t.enter(PhaseApply)
	res, errs := t.Interface.Delete(resources, policy)
	t.record(res)
	return res, errs
}

func (t *tracker) GetWaiter(ws kube.WaitStrategy) (kube.Waiter, error) {
	w, err := t.Interface.GetWaiter(ws)
	if err != nil {
		return nil, err
	}
	return &phaseWaiter{Waiter: w, t: t}, nil
}

func (t *tracker) GetWaiterWithOptions(ws kube.WaitStrategy, opts ...kube.WaitOption) (kube.Waiter, error) {
	w, err := t.waitOptions.GetWaiterWithOptions(ws, opts...)
	if err != nil {
		return nil, err
	}
	return &phaseWaiter{Waiter: w, t: t}, nil
}

// phaseWaiter marks the wait phase while the release's resources are
// awaited; hooks (WatchUntilReady) and deletions stay in apply.
type phaseWaiter struct {
	kube.Waiter
	t *tracker
}

func (w *phaseWaiter) Wait(resources kube.ResourceList, timeout time.Duration) error {
	if w.t.waits {
		w.t.enter(PhaseWait)
	}
	return w.t.done(w.Waiter.Wait(resources, timeout))
}

func (w *phaseWaiter) WaitWithJobs(resources kube.ResourceList, timeout time.Duration) error {
	if w.t.waits {
		w.t.enter(PhaseWait)
	}
	return w.t.done(w.Waiter.WaitWithJobs(resources, timeout))
}

func (w *phaseWaiter) WatchUntilReady(resources kube.ResourceList, timeout time.Duration) error {
	w.t.enter(PhaseApply)
	return w.t.done(w.Waiter.WatchUntilReady(resources, timeout))
}
