package helm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"helm.sh/helm/v4/pkg/action"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	rcommon "helm.sh/helm/v4/pkg/release/common"
	release "helm.sh/helm/v4/pkg/release/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outposthq/outpost/internal/archive"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/kube/access"
	"github.com/outposthq/outpost/internal/taskspec"
)

// deploy installs or upgrades the release: fetch, verify, render,
// validate, then apply (and wait).
func (e *Executor) deploy(ctx context.Context, r *run) (*Result, error) {
	last, err := r.last()
	if err != nil {
		return nil, r.fail(PhaseRender, err)
	}
	if r.doneBefore(last) {
		res := newResult(r.spec.EffectiveAction(), last)
		res.Unchanged = true
		return res, nil
	}
	upgrade := last != nil && last.Info.Status != rcommon.StatusUninstalled
	if r.spec.EffectiveAction() == taskspec.HelmUpgrade && !upgrade {
		return nil, r.fail(PhaseRender, executor.Terminal(fmt.Errorf("%w: nothing to upgrade; use the install action", ErrNotFound)))
	}

	f, err := e.fetch(ctx, r.task, r.spec.Chart)
	if err != nil {
		return nil, r.fail(PhaseFetch, err)
	}
	ch, err := e.load(f.archive)
	if err != nil {
		return nil, r.fail(PhaseVerify, executor.Terminal(err))
	}
	vals := map[string]any{}
	if len(r.spec.Values) > 0 && !bytes.Equal(bytes.TrimSpace(r.spec.Values), []byte("null")) {
		if err := json.Unmarshal(r.spec.Values, &vals); err != nil {
			return nil, r.fail(PhaseRender, executor.Terminal(fmt.Errorf("values: %w", err)))
		}
	}
	e.log.LogAttrs(ctx, slog.LevelDebug, "helm chart loaded", r.logAttrs(slog.String(logSource, f.source))...)

	if last != nil && last.Info.Status.IsPending() {
		if err := e.recoverPending(r, last); err != nil {
			return nil, r.fail(PhaseRender, err)
		}
	}

	r.tracker.setRendering(true)
	dry, err := e.runDeploy(ctx, r, ch, vals, last, action.DryRunServer)
	r.tracker.setRendering(false)
	if err != nil {
		return nil, r.fail(PhaseRender, classify(err))
	}
	rd, err := e.renderedObjects(r, dry, ch, last, upgrade)
	if err != nil {
		return nil, r.fail(PhaseValidate, executor.Terminal(err))
	}
	dryRun, err := e.validate(ctx, r, rd)
	if err != nil {
		return nil, r.fail(PhaseValidate, err)
	}
	e.log.LogAttrs(ctx, slog.LevelInfo, "helm release validated", r.logAttrs(slog.Int(logObjects, len(rd.objects)))...)

	rel, err := e.runDeploy(ctx, r, ch, vals, last, action.DryRunNone)
	if err != nil {
		phase := r.tracker.current()
		err = classify(err)
		if phase == PhaseWait && ctx.Err() == nil {
			// Helm recorded the revision as failed; trying again would
			// only wait again.
			err = executor.Terminal(err)
		}
		return nil, r.fail(phase, e.explainFailure(r, err))
	}
	res := newResult(r.spec.EffectiveAction(), rel)
	res.Source = f.source
	res.DryRun = dryRun
	res.addTracked(r.tracker)
	return res, nil
}

// runDeploy runs Helm's install (no release yet, or only uninstalled
// records) or upgrade with the task's settings and the given dry-run
// strategy.
func (e *Executor) runDeploy(ctx context.Context, r *run, ch *chart.Chart, vals map[string]any, last *release.Release, dry action.DryRunStrategy) (*release.Release, error) {
	s := &r.spec
	if last == nil || last.Info.Status == rcommon.StatusUninstalled {
		in := action.NewInstall(r.cfg)
		in.ReleaseName, in.Namespace = s.Release, s.Namespace
		in.Replace = last != nil
		in.CreateNamespace = s.CreateNamespace
		in.DryRunStrategy = dry
		in.WaitStrategy, in.WaitOptions, in.WaitForJobs = r.waitStrategy(), waitOptions(ctx), s.Waits()
		in.Timeout = r.timeout()
		in.RollbackOnFailure = s.Atomic
		in.DisableHooks, in.SkipCRDs = s.DisableHooks, s.SkipCRDs
		in.Description = s.Description
		in.Labels = r.releaseLabels()
		in.ServerSideApply = true
		in.TakeOwnership, in.ForceConflicts = s.Adopt, s.Adopt
		// The server-side dry run validates every object against the
		// live schema; Helm's client-side OpenAPI check would only fetch
		// the whole schema again.
		in.DisableOpenAPIValidation = true
		in.EnableDNS = false
		rel, err := in.RunWithContext(ctx, ch, vals)
		if err != nil {
			return nil, err
		}
		return asRelease(rel)
	}
	up := action.NewUpgrade(r.cfg)
	up.Namespace = s.Namespace
	up.DryRunStrategy = dry
	up.WaitStrategy, up.WaitOptions, up.WaitForJobs = r.waitStrategy(), waitOptions(ctx), s.Waits()
	up.Timeout = r.timeout()
	up.RollbackOnFailure = s.Atomic
	up.CleanupOnFail = s.Atomic
	up.MaxHistory = s.EffectiveHistoryMax()
	up.DisableHooks, up.SkipCRDs = s.DisableHooks, s.SkipCRDs
	up.Description = s.Description
	up.Labels = r.releaseLabels()
	up.ServerSideApply = "auto"
	up.TakeOwnership, up.ForceConflicts = s.Adopt, s.Adopt
	// A task states the whole of its values; nothing is carried over from
	// the previous revision.
	up.ResetValues = true
	up.DisableOpenAPIValidation = true
	up.EnableDNS = false
	rel, err := up.RunWithContext(ctx, s.Release, ch, vals)
	if err != nil {
		return nil, err
	}
	return asRelease(rel)
}

// renderedObjects collects what the dry run rendered: the release's
// objects and hooks, the chart's CRDs, and for an upgrade the objects of
// the deployed revision that the new one drops.
func (e *Executor) renderedObjects(r *run, dry *release.Release, ch *chart.Chart, last *release.Release, upgrade bool) (*rendered, error) {
	rd := &rendered{}
	if err := archive.CheckYAML("rendered manifests", []byte(dry.Manifest), archive.YAMLLimits{}); err != nil {
		return nil, err
	}
	if err := e.parseObjects(dry.Manifest, "rendered manifests", false, &rd.objects); err != nil {
		return nil, err
	}
	for _, h := range dry.Hooks {
		if err := archive.CheckYAML("hook "+h.Path, []byte(h.Manifest), archive.YAMLLimits{}); err != nil {
			return nil, err
		}
		if err := e.parseObjects(h.Manifest, "hook "+h.Path, true, &rd.objects); err != nil {
			return nil, err
		}
	}
	for _, o := range rd.objects {
		if err := claimsOwnership(o.u); err != nil {
			return nil, err
		}
		// Validate what will be written: Helm's build adds the label.
		labelObject(o.u, r.spec.Release)
	}
	if !r.spec.SkipCRDs {
		for _, crd := range ch.CRDObjects() {
			if err := archive.CheckYAML(crd.Filename, crd.File.Data, archive.YAMLLimits{}); err != nil {
				return nil, err
			}
			if err := e.parseObjects(string(crd.File.Data), crd.Filename, false, &rd.crds); err != nil {
				return nil, err
			}
		}
	}
	if upgrade && last.Info.Status == rcommon.StatusDeployed {
		var old []*object
		if err := e.parseObjects(last.Manifest, "the deployed revision's manifests", false, &old); err != nil {
			return nil, err
		}
		rd.gone = dropped(old, rd.objects)
	}
	return rd, nil
}

// dropped returns the objects of old that next does not hold: what moving
// from one revision to the other deletes.
func dropped(old, next []*object) []*object {
	keep := map[string]bool{}
	for _, o := range next {
		keep[objectKey(o)] = true
	}
	var gone []*object
	for _, o := range old {
		if !keep[objectKey(o)] {
			gone = append(gone, o)
		}
	}
	return gone
}

func objectKey(o *object) string {
	gvk := o.u.GroupVersionKind()
	return gvk.Group + "/" + gvk.Kind + "/" + o.u.GetNamespace() + "/" + o.u.GetName()
}

// validate runs the checks that come before the first write and returns
// how many objects were dry-run.
func (e *Executor) validate(ctx context.Context, r *run, rd *rendered) (int, error) {
	if err := e.resolveObjects(rd, r.spec.Namespace, r.spec.CreateNamespace && !e.namespaceExists(ctx, r.spec.Namespace)); err != nil {
		return 0, err
	}
	if err := e.checkDeny(rd); err != nil {
		return 0, err
	}
	if err := e.access.Check(ctx, needs(rd, r.spec.Namespace, r.spec.CreateNamespace)); err != nil {
		if errors.Is(err, access.ErrForbidden) {
			return 0, executor.Terminal(err)
		}
		return 0, err
	}
	return e.validateObjects(ctx, rd, r.spec.Release, r.spec.Namespace, r.spec.Adopt)
}

// namespaceExists reports whether namespace exists; on any doubt it says
// no, which only defers the dry run of its objects to the apply.
func (e *Executor) namespaceExists(ctx context.Context, namespace string) bool {
	_, err := e.kube.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
	return err == nil
}

// explainFailure adds what an atomic task did about a failure.
func (e *Executor) explainFailure(r *run, err error) error {
	if !r.spec.Atomic {
		return err
	}
	last, lerr := r.last()
	switch {
	case lerr != nil:
		return err
	case last == nil:
		return fmt.Errorf("%w (atomic: the failed install was uninstalled)", err)
	case last.Info.Status == rcommon.StatusDeployed:
		return fmt.Errorf("%w (atomic: rolled back; revision %d is deployed)", err, last.Version)
	}
	return err
}

// classify marks err terminal unless a retry may help: API timeouts,
// throttling, server errors, network errors and cancellation are
// retryable; template, schema and validation errors are not.
func classify(err error) error {
	if err == nil || executor.IsTerminal(err) {
		return err
	}
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr),
		apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), apierrors.IsTooManyRequests(err),
		apierrors.IsInternalError(err), apierrors.IsServiceUnavailable(err), apierrors.IsConflict(err):
		return err
	}
	return executor.Terminal(err)
}
