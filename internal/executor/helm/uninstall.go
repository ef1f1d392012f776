package helm

import (
	"context"
	"errors"
	"fmt"

	"helm.sh/helm/v4/pkg/action"
	rcommon "helm.sh/helm/v4/pkg/release/common"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/kube/access"
)

// uninstall removes the release's objects and records. A release that is
// not there (never installed, or uninstalled by an earlier attempt) is a
// success that says so.
func (e *Executor) uninstall(ctx context.Context, r *run) (*Result, error) {
	last, err := r.last()
	if err != nil {
		return nil, r.fail(PhaseRender, err)
	}
	if last == nil || last.Info.Status == rcommon.StatusUninstalled {
		res := &Result{Release: r.spec.Release, Namespace: r.spec.Namespace, Action: r.spec.EffectiveAction(), Status: rcommon.StatusUninstalled.String(), Unchanged: true, Objects: []ObjectResult{}}
		if last != nil {
			res.Revision = last.Version
		} else {
			res.Description = "no such release; nothing to uninstall"
		}
		return res, nil
	}
	rd := &rendered{}
	if err := e.parseObjects(last.Manifest, "the current revision", false, &rd.gone); err != nil {
		return nil, r.fail(PhaseValidate, executor.Terminal(err))
	}
	if err := e.resolveObjects(rd, r.spec.Namespace, false); err != nil {
		return nil, r.fail(PhaseValidate, err)
	}
	if err := e.access.Check(ctx, needs(rd, r.spec.Namespace, false)); err != nil {
		if errors.Is(err, access.ErrForbidden) {
			err = executor.Terminal(err)
		}
		return nil, r.fail(PhaseValidate, err)
	}

	un := action.NewUninstall(r.cfg)
	un.KeepHistory = r.spec.KeepHistory
	un.DisableHooks = r.spec.DisableHooks
	un.Timeout = r.timeout()
	un.WaitStrategy, un.WaitOptions = r.waitStrategy(), waitOptions(ctx)
	un.DeletionPropagation = "background"
	un.IgnoreNotFound = true
	un.Description = r.spec.Description
	resp, err := un.Run(r.spec.Release)
	if err != nil {
		return nil, r.fail(r.tracker.current(), classify(fmt.Errorf("uninstall: %w", err)))
	}
	res := newResult(r.spec.EffectiveAction(), last)
	res.Status = rcommon.StatusUninstalled.String()
	if resp != nil && resp.Info != "" {
		res.Description = resp.Info
	}
	res.addTracked(r.tracker)
	return res, nil
}
