package manifests

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/kube"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// apply applies tg with server-side apply, forcing conflicts: every object
// the executor writes is the release's own or adopted by the task.
func (e *Executor) apply(ctx context.Context, tg *target, dryRun bool) (*unstructured.Unstructured, error) {
	opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: true}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	return e.resource(tg.ref).Apply(ctx, tg.ref.Name, tg.obj, opts)
}

// dryRun dry-runs every target to be written whose dry-run need not wait
// for the foundation objects, and returns how many it dry-ran. Rejected
// objects are listed by name and position, with the server's reason.
func (e *Executor) dryRun(ctx context.Context, targets []*target) (int, error) {
	var now []*target
	for _, tg := range targets {
		if tg.skip == "" && !tg.deferred {
			now = append(now, tg)
		}
	}
	return len(now), e.dryRunEach(ctx, now, time.Time{})
}

// dryRunEach dry-runs targets in parallel. Until retryUntil, a NotFound
// (a CRD's resource not served yet) is retried.
func (e *Executor) dryRunEach(ctx context.Context, targets []*target, retryUntil time.Time) error {
	var mu sync.Mutex
	var failed []*target
	var reasons = map[*target]string{}
	err := forEach(ctx, e.parallel, targets, func(ctx context.Context, tg *target) error {
		for delay := 50 * time.Millisecond; ; delay = min(2*delay, time.Second) {
			sentAfter := e.clock.now()
			out, err := e.apply(ctx, tg, true)
			if err == nil {
				tg.noop = unchanged(tg.seen, out, sentAfter)
				return nil
			}
			if apierrors.IsNotFound(err) && e.now().Before(retryUntil) {
				if err := sleep(ctx, delay); err != nil {
					return err
				}
				continue
			}
			if !kube.PermanentAPIError(err) && !apierrors.IsNotFound(err) {
				return apiError(ctx, "dry-run", tg.String(), err)
			}
			mu.Lock()
			failed = append(failed, tg)
			reasons[tg] = err.Error()
			mu.Unlock()
			return nil
		}
	})
	if err != nil {
		return err
	}
	if len(failed) == 0 {
		return nil
	}
	slices.SortFunc(failed, func(a, b *target) int {
		return cmp.Or(cmp.Compare(a.src.Doc, b.src.Doc), cmp.Compare(a.src.Item, b.src.Item))
	})
	msgs := make([]string, len(failed))
	for i, tg := range failed {
		msgs[i] = tg.String() + ": " + reasons[tg]
	}
	return executor.Terminal(fmt.Errorf("manifests: %w, nothing of the bundle was written: %s", ErrDryRun, list(msgs)))
}

// claim records the pending snapshot before the first write, and with it
// this attempt's claim on the release: a later commit of an older attempt
// fails on the changed resourceVersion.
func (e *Executor) claim(ctx context.Context, r *run) error {
	p := &pending{TaskID: r.task.ID, Attempt: r.task.Attempt, Revision: r.revision, Digest: r.digest, Delete: r.spec.Delete}
	for _, tg := range r.targets {
		p.Targets = append(p.Targets, snapshot{Ref: tg.ref, Existed: tg.existed, ResourceVersion: tg.rv, Skip: tg.skip, Adopted: tg.adopted})
	}
	for _, pi := range r.prune {
		s := pi.snap
		s.Ref = pi.ref
		p.Prune = append(p.Prune, s)
	}
	r.rec.pending = p
	err := r.inv.save(ctx, r.rec)
	if err == nil || !lostRace(err) {
		return err
	}
	rec, lerr := r.inv.load(ctx)
	if lerr != nil {
		return lerr
	}
	if ferr := fence(rec, r.task.ID, r.task.Attempt); ferr != nil {
		return ferr
	}
	return fmt.Errorf("manifests: %w: %s changed while the bundle was validated; retry the task: %w", ErrInventory, r.inv, err)
}

// applyAll writes the bundle: Namespaces and CRDs first (waiting for the
// CRDs to be Established), then the deferred dry-runs, then everything else
// kind by kind in install order. It returns how many dry-runs were
// deferred.
func (e *Executor) applyAll(ctx context.Context, r *run) (int, error) {
	var first, deferred, rest []*target
	for _, tg := range r.targets {
		switch {
		case tg.skip != "":
			tg.outcome, tg.reason = OutcomeSkipped, tg.skip
		case foundation(tg.ref.Group, tg.ref.Kind):
			first = append(first, tg)
		default:
			rest = append(rest, tg)
		}
		if tg.skip == "" && tg.deferred {
			deferred = append(deferred, tg)
		}
	}
	start := e.now()
	if err := e.applyEach(ctx, first); err != nil {
		return 0, err
	}
	establishedBy := e.now().Add(e.establish)
	var crds []*target
	for _, tg := range first {
		if tg.ref.Kind == "CustomResourceDefinition" {
			crds = append(crds, tg)
		}
	}
	if err := forEach(ctx, e.parallel, crds, func(ctx context.Context, tg *target) error {
		return e.waitEstablished(ctx, tg, establishedBy)
	}); err != nil {
		return 0, err
	}
	if len(crds) > 0 {
		// Later tasks find the new types through discovery.
		e.mapper.Reset()
	}
	if len(deferred) > 0 {
		if err := e.dryRunEach(ctx, deferred, establishedBy); err != nil {
			return 0, err
		}
	}
	for _, batch := range byKind(rest, func(tg *target) string { return tg.ref.Kind }, false) {
		if err := e.applyEach(ctx, batch); err != nil {
			return 0, err
		}
	}
	e.log.LogAttrs(ctx, slog.LevelDebug, "manifests bundle applied", slog.String(logTask, r.task.ID), slog.String(logPhase, "apply"),
		slog.Int(logObjects, len(first)+len(rest)), slog.Duration(logDuration, e.now().Sub(start)))
	return len(deferred), nil
}

// applyEach applies targets in parallel and records their outcomes. A
// target whose dry-run showed no change is not sent again: the object was
// as the bundle wants it when it was dry-run, and applying it then would
// have been a no-op.
func (e *Executor) applyEach(ctx context.Context, targets []*target) error {
	return forEach(ctx, e.parallel, targets, func(ctx context.Context, tg *target) error {
		var rv string
		if tg.noop {
			rv = tg.seen.rv
		} else {
			out, err := e.apply(ctx, tg, false)
			if err != nil {
				return apiError(ctx, "apply", tg.String(), err)
			}
			rv = out.GetResourceVersion()
		}
		switch {
		case !tg.existed:
			tg.outcome = OutcomeCreated
		case rv == tg.rv:
			tg.outcome = OutcomeUnchanged
		default:
			tg.outcome = OutcomeConfigured
		}
		if tg.adopted {
			tg.reason = "adopted by this release"
		}
		return nil
	})
}

// waitEstablished polls a CRD until it is Established, its names are
// refused, or deadline passes.
func (e *Executor) waitEstablished(ctx context.Context, tg *target, deadline time.Time) error {
	for delay := 20 * time.Millisecond; ; delay = min(2*delay, 500*time.Millisecond) {
		crd, err := e.dynamic.Resource(crdResource).Get(ctx, tg.ref.Name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return apiError(ctx, "wait for", tg.String(), err)
		}
		if err == nil {
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				switch {
				case m["type"] == "Established" && m["status"] == "True":
					return nil
				case m["type"] == "NamesAccepted" && m["status"] == "False":
					return executor.Terminal(fmt.Errorf("manifests: %w: %s: names not accepted: %v", ErrNotEstablished, tg, m["message"]))
				}
			}
		}
		if !e.now().Before(deadline) {
			return fmt.Errorf("manifests: %w: %s is not Established after %s; check the API server", ErrNotEstablished, tg, e.establish)
		}
		if err := sleep(ctx, delay); err != nil {
			return err
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("manifests: stopped: %w", context.Cause(ctx))
	case <-t.C:
		return nil
	}
}
