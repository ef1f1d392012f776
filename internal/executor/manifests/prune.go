package manifests

import (
	"context"
	"fmt"
	"log/slog"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outposthq/outpost/internal/executor"
)

// pruneItem is an object an earlier revision held and this one lacks.
type pruneItem struct {
	ref Ref
	// unfinished: only an unfinished task of the release may have
	// written it; if it does not exist, it was never written.
	unfinished bool
	snap       snapshot
	outcome    string
	reason     string
}

// pruneCandidates lists what the release held and this revision lacks:
// the committed inventory, plus whatever an unfinished task of the release
// may have written. A retried attempt takes the list from its snapshot.
func (r *run) pruneCandidates() []*pruneItem {
	if !r.spec.PruneEnabled() {
		return nil
	}
	if r.snap != nil {
		out := make([]*pruneItem, len(r.snap.Prune))
		for i, s := range r.snap.Prune {
			out[i] = &pruneItem{ref: s.Ref}
		}
		return out
	}
	keep := make(map[string]bool, len(r.targets))
	for _, tg := range r.targets {
		keep[tg.ref.key()] = true
	}
	var out []*pruneItem
	add := func(ref Ref, unfinished bool) {
		if !keep[ref.key()] {
			keep[ref.key()] = true
			out = append(out, &pruneItem{ref: ref, unfinished: unfinished})
		}
	}
	if c := r.rec.committed; c != nil {
		for _, ref := range c.Objects {
			add(ref, false)
		}
	}
	if p := r.rec.pending; p != nil {
		for _, s := range p.Targets {
			if s.Skip == "" {
				add(s.Ref, true)
			}
		}
	}
	return out
}

// pruneAll deletes the prune candidates (a delete task's: every object of
// the release) in reverse install order, custom resources and workloads
// before CRDs and Namespaces, each after checking again that it still
// carries the release's labels. An object that no longer does is skipped
// and reported. A delete task also leaves in place a Namespace or CRD
// whose deletion would take an object it skipped with it.
func (e *Executor) pruneAll(ctx context.Context, r *run) error {
	start := e.now()
	phase := "prune"
	if r.spec.Delete {
		phase = "delete"
	}
	for _, batch := range byKind(r.prune, func(p *pruneItem) string { return p.ref.Kind }, true) {
		// Batches run one after the other, so the outcomes of the
		// earlier ones (the objects inside Namespaces and of CRDs) are
		// known here.
		var left map[string]string
		if r.spec.Delete {
			left = leftInPlace(r.prune)
		}
		err := forEach(ctx, e.parallel, batch, func(ctx context.Context, p *pruneItem) error {
			if why, ok := left[containerKey(p.ref)]; ok {
				p.outcome, p.reason = OutcomeSkipped, why
				return nil
			}
			return e.pruneOne(ctx, r, p)
		})
		if err != nil {
			return err
		}
	}
	e.log.LogAttrs(ctx, slog.LevelDebug, "manifests "+phase+" done", slog.String(logTask, r.task.ID), slog.String(logPhase, phase),
		slog.Int(logObjects, len(r.prune)), slog.Duration(logDuration, e.now().Sub(start)))
	return nil
}

// containerKey names the Namespace or CRD ref is, "" for other objects.
func containerKey(ref Ref) string {
	switch {
	case ref.Group == "" && ref.Kind == "Namespace":
		return "ns/" + ref.Name
	case ref.Group == "apiextensions.k8s.io" && ref.Kind == "CustomResourceDefinition":
		return "crd/" + ref.Name
	}
	return ""
}

// leftInPlace returns, by containerKey, the Namespaces and CRDs that hold
// an object skipped so far, with the reason to leave them in place too:
// deleting them would delete that object.
func leftInPlace(items []*pruneItem) map[string]string {
	out := map[string]string{}
	for _, p := range items {
		if p.outcome != OutcomeSkipped || p.reason == reasonGone {
			continue
		}
		if p.ref.Namespace != "" {
			if _, ok := out["ns/"+p.ref.Namespace]; !ok {
				out["ns/"+p.ref.Namespace] = fmt.Sprintf("holds %s, which is left in place; left in place too", p.ref)
			}
		}
		if p.ref.Group != "" {
			crd := "crd/" + p.ref.Resource + "." + p.ref.Group
			if _, ok := out[crd]; !ok {
				out[crd] = fmt.Sprintf("defines the type of %s, which is left in place; left in place too", p.ref)
			}
		}
	}
	return out
}

// reasonGone is why an object that no longer exists is skipped.
const reasonGone = "no longer exists"

// removed is the outcome of an object the task deleted.
func (r *run) removed() string {
	if r.spec.Delete {
		return OutcomeDeleted
	}
	return OutcomePruned
}

func (e *Executor) pruneOne(ctx context.Context, r *run, p *pruneItem) error {
	gone := func() {
		// What the first look found decides, so a retry after a crash
		// reports what the interrupted attempt deleted as pruned.
		if p.snap.Existed && p.snap.Owned {
			p.outcome = r.removed()
		} else {
			p.outcome, p.reason = OutcomeSkipped, reasonGone
		}
	}
	if p.snap.Existed && !p.snap.Owned {
		p.outcome, p.reason = OutcomeSkipped, fmt.Sprintf("no longer carries the labels of release %s; left in place", r.spec.Release)
		return nil
	}
	live, ours, _, err := e.ownedNow(ctx, p.ref, r.spec.Release)
	if err != nil {
		return err
	}
	if live == nil {
		gone()
		return nil
	}
	if !ours {
		p.outcome, p.reason = OutcomeSkipped, fmt.Sprintf("no longer carries the labels of release %s; left in place", r.spec.Release)
		return nil
	}
	uid := live.GetUID()
	if p.snap.UID != "" && p.snap.UID != uid {
		// The object validation saw is gone (perhaps deleted by an
		// interrupted attempt) and another has taken its name since.
		p.outcome, p.reason = OutcomeSkipped, "replaced by another object since the task began; left in place"
		return nil
	}
	// Objects being deleted (finalizers pending) are deleted again, which
	// changes nothing, and reported deleted: the task does not wait for
	// finalizers.
	policy := metav1.DeletePropagationBackground
	err = e.resource(p.ref).Delete(ctx, p.ref.Name, metav1.DeleteOptions{
		PropagationPolicy: &policy,
		// The object read above is the one checked; one created since
		// under the same name is not deleted.
		Preconditions: &metav1.Preconditions{UID: &uid},
	})
	switch {
	case err == nil, apierrors.IsNotFound(err):
		p.outcome = r.removed()
	case apierrors.IsConflict(err):
		p.outcome, p.reason = OutcomeSkipped, "replaced by another object while being deleted; left in place"
	case r.spec.Delete:
		return apiError(ctx, "delete", p.ref.String(), err)
	default:
		return apiError(ctx, "prune", p.ref.String(), err)
	}
	return nil
}

// commit records the revision as the release's state and clears the
// pending snapshot, provided this attempt still holds the release.
func (e *Executor) commit(ctx context.Context, r *run, result []byte) error {
	c := &committed{Release: r.spec.Release, Revision: r.revision, TaskID: r.task.ID, Attempt: r.task.Attempt, Digest: r.digest, Result: result}
	for _, tg := range r.targets {
		if tg.skip == "" {
			c.Objects = append(c.Objects, tg.ref)
		}
	}
	return r.writeInventory(ctx, func() (bool, error) {
		r.rec.committed, r.rec.pending = c, nil
		err := r.inv.save(ctx, r.rec)
		return err != nil && lostRace(err), err
	})
}

// writeInventory runs write, a conditional write of the inventory read in
// r.rec, until it does not lose a race (raced false): after a lost race it
// reads the inventory again and carries on only while this attempt still
// holds the release.
func (r *run) writeInventory(ctx context.Context, write func() (raced bool, err error)) error {
	for range maxInventoryTries {
		raced, err := write()
		if !raced {
			return err
		}
		rec, lerr := r.inv.load(ctx)
		if lerr != nil {
			return lerr
		}
		if !holds(rec, r.task.ID, r.task.Attempt) {
			if ferr := fence(rec, r.task.ID, r.task.Attempt); ferr != nil {
				return ferr
			}
			return stale(r)
		}
		r.rec = rec
	}
	return fmt.Errorf("manifests: %w: %s keeps changing; retry the task", ErrInventory, r.inv)
}

func stale(r *run) error {
	return executor.Terminal(fmt.Errorf("manifests: %w: attempt %d of task %s no longer holds release %s (another attempt or task took it over); not committing", ErrStaleAttempt, r.task.Attempt, r.task.ID, r.spec.Release))
}
