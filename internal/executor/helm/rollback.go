package helm

import (
	"context"
	"fmt"
	"strings"

	"helm.sh/helm/v4/pkg/action"
	rcommon "helm.sh/helm/v4/pkg/release/common"

	"github.com/outposthq/outpost/internal/executor"
)

// rollback returns the release to a revision. The new revision's
// description names the task, so a retry of a rollback that finished
// reports it instead of rolling back again.
func (e *Executor) rollback(ctx context.Context, r *run) (*Result, error) {
	last, err := r.last()
	if err != nil {
		return nil, r.fail(PhaseRender, err)
	}
	if last == nil || last.Info.Status == rcommon.StatusUninstalled {
		return nil, r.fail(PhaseRender, executor.Terminal(fmt.Errorf("%w: nothing to roll back", ErrNotFound)))
	}
	marker := "by task " + r.task.ID
	if strings.Contains(last.Info.Description, marker) && !last.Info.Status.IsPending() {
		res := newResult(r.spec.EffectiveAction(), last)
		res.Unchanged = true
		return res, nil
	}
	if last.Info.Status.IsPending() {
		if err := e.recoverPending(r, last); err != nil {
			return nil, r.fail(PhaseRender, err)
		}
	}
	target := r.spec.Revision
	if target == 0 {
		target = last.Version - 1
	}
	if target < 1 {
		return nil, r.fail(PhaseRender, executor.Terminal(fmt.Errorf("revision %d is the first; there is nothing before it", last.Version)))
	}
	to, err := r.cfg.Releases.Get(r.spec.Release, target)
	if err != nil {
		return nil, r.fail(PhaseRender, executor.Terminal(fmt.Errorf("revision %d: %w (see the history action)", target, err)))
	}
	toRel, err := asRelease(to)
	if err != nil {
		return nil, r.fail(PhaseRender, err)
	}
	rd := &rendered{}
	if err := e.parseObjects(toRel.Manifest, fmt.Sprintf("revision %d", target), false, &rd.objects); err != nil {
		return nil, r.fail(PhaseValidate, executor.Terminal(err))
	}
	for _, h := range toRel.Hooks {
		if err := e.parseObjects(h.Manifest, "hook "+h.Path, true, &rd.objects); err != nil {
			return nil, r.fail(PhaseValidate, executor.Terminal(err))
		}
	}
	var current []*object
	if err := e.parseObjects(last.Manifest, "the current revision", false, &current); err != nil {
		return nil, r.fail(PhaseValidate, executor.Terminal(err))
	}
	rd.gone = dropped(current, rd.objects)
	if _, err := e.validate(ctx, r, rd); err != nil {
		return nil, r.fail(PhaseValidate, err)
	}

	rb := action.NewRollback(r.cfg)
	rb.Version = target
	rb.Timeout = r.timeout()
	rb.WaitStrategy, rb.WaitOptions, rb.WaitForJobs = r.waitStrategy(), waitOptions(ctx), r.spec.Waits()
	rb.DisableHooks = r.spec.DisableHooks
	rb.MaxHistory = r.spec.EffectiveHistoryMax()
	rb.ServerSideApply = "auto"
	rb.CleanupOnFail = true
	desc := r.spec.Description
	if desc == "" {
		desc = fmt.Sprintf("Rollback to %d", target)
	}
	rb.Description = desc + " " + marker
	if err := rb.Run(r.spec.Release); err != nil {
		return nil, r.fail(r.tracker.current(), classify(err))
	}
	now, err := r.last()
	if err != nil || now == nil {
		return nil, r.fail(PhaseApply, fmt.Errorf("read the rolled-back release: %w", err))
	}
	res := newResult(r.spec.EffectiveAction(), now)
	res.addTracked(r.tracker)
	return res, nil
}
