package tfdrift

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/outposthq/outpost/internal/agent/reconcile"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/taskspec"
)

// check runs one check of rel under its task locks: a plan in the detect
// mode, an apply in the correct mode. It returns the release's state and,
// when it corrected drift, the correction; done is false when the check
// did not run (ctx ended, or the release changed or was forgotten while
// the check waited for its locks).
func (c *Checker) check(ctx context.Context, rel Release, spec *taskspec.Terraform, gen uint64) (state reconcile.Drift, corrected *reconcile.Drift, done bool) {
	mode := rel.mode()
	log := c.log.With(logRelease, rel.Name, logRevision, rel.Revision, logMode, string(mode))
	if c.opts.Lock != nil {
		unlock, err := c.opts.Lock.Lock(ctx, []string{reconcile.LockKey(rel.Name), spec.ConflictKey()})
		if err != nil {
			return state, nil, false
		}
		defer unlock()
	}
	if !c.current(rel.Name, gen) {
		return state, nil, false
	}
	action := taskspec.TerraformPlan
	if mode == reconcile.ModeCorrect {
		action = taskspec.TerraformApply
	}
	state = reconcile.Drift{Release: rel.Name, Revision: rel.Revision, Mode: mode}
	red := c.opts.NewRedactor()
	res, err := c.execute(ctx, rel, action, red)
	state.Time = c.opts.Clock.Now()
	if err != nil {
		if ctx.Err() != nil {
			return state, nil, false
		}
		state.Error = red.String(err.Error())
		log.LogAttrs(ctx, slog.LevelWarn, "terraform drift check failed; retrying at the next interval", slog.String(logError, state.Error))
		return state, nil, true
	}
	objs := objects(res.Plan.Resources)
	switch {
	case action == taskspec.TerraformPlan:
		state.Objects = objs
	case res.AwaitingApproval:
		state.Objects = objs
		state.Error = fmt.Sprintf("the correction needs approval: the approval policy %q holds its plan %s; apply release %s again (outpost release apply) to have that plan held for approval", spec.Approval, res.Plan.Digest, rel.Name)
	case len(objs) > 0:
		fix := state
		fix.Objects, fix.Corrected = objs, true
		corrected = &fix
	}
	log.LogAttrs(ctx, slog.LevelDebug, "terraform drift checked", slog.Int(logObjects, len(objs)), slog.Bool(logCorrected, corrected != nil))
	return state, corrected, true
}

// execute runs the terraform executor on the release's spec with action,
// as a task of the release would run: its artifacts, fetcher and a fresh
// redactor.
func (c *Checker) execute(ctx context.Context, rel Release, action string, red Redactor) (*taskspec.TerraformResult, error) {
	spec, err := rel.specFor(action)
	if err != nil {
		return nil, err
	}
	out, err := c.opts.Executor.Execute(ctx, executor.Task{
		ID:        rel.TaskID,
		Kind:      taskspec.KindTerraform,
		Spec:      spec,
		Artifacts: rel.Artifacts,
		Fetcher:   rel.Fetcher,
		Redact:    red,
	})
	if err != nil {
		return nil, err
	}
	var res taskspec.TerraformResult
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("tfdrift: the executor's result does not decode: %w", err)
	}
	return &res, nil
}

// objects reports each resource a plan changes as one drifted object:
// its address, and its planned action as its one field.
func objects(changes []taskspec.TerraformResourceChange) []reconcile.ObjectDrift {
	out := make([]reconcile.ObjectDrift, 0, len(changes))
	for _, rc := range changes {
		out = append(out, reconcile.ObjectDrift{Address: rc.Address, Fields: []string{rc.Action}})
	}
	slices.SortFunc(out, func(a, b reconcile.ObjectDrift) int { return cmp.Compare(a.Address, b.Address) })
	return out
}

// signature identifies a release state, to report each change once.
func signature(d reconcile.Drift) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rev=%d mode=%s err=%q", d.Revision, d.Mode, d.Error)
	for _, o := range d.Objects {
		fmt.Fprintf(&b, "|%s %s", o.Address, strings.Join(o.Fields, ","))
	}
	return b.String()
}
