package manifests

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/kube"
)

// deleteRelease runs a delete task: it deletes every object of the release
// that still carries the release's labels, then the inventory. It goes
// through the same steps as an apply with an empty bundle that prunes
// everything (access review, observe, a dry run, a pending claim before
// the first delete, deletes in reverse install order), but ends by deleting the
// inventory Secret, conditional on the resourceVersion of its own claim,
// rather than committing a revision.
//
// The objects deleted are those of the committed revision and, when an
// apply was interrupted, those its pending record lists as written or
// pruned that exist now and carry the release's labels: an interrupted
// apply may have created them, and no later task will ever prune them once
// the inventory is gone.
func (e *Executor) deleteRelease(ctx context.Context, r *run, start time.Time) (json.RawMessage, error) {
	t := r.task
	r.inv = e.inventory(r.spec.Release)
	var err error
	if r.rec, err = r.inv.load(ctx); err != nil {
		return nil, err
	}
	if r.rec.rv == "" {
		// Never applied, or deleted already (perhaps by an earlier attempt
		// of this task whose report was lost): nothing to do.
		e.log.LogAttrs(ctx, slog.LevelInfo, "manifests release not found, nothing to delete", slog.String(logTask, t.ID), slog.Int64(logAttempt, t.Attempt), slog.String(logRelease, r.spec.Release))
		return encodeResult(&Result{Release: r.spec.Release, Objects: []ObjectResult{}, DryRun: DryRun{OK: true}})
	}
	if err := fence(r.rec, t.ID, t.Attempt); err != nil {
		return nil, err
	}
	if p := r.rec.pending; p != nil && p.TaskID == t.ID {
		r.snap = p
	}
	switch {
	case r.snap != nil:
		r.revision = r.snap.Revision
	case r.rec.committed != nil:
		r.revision = r.rec.committed.Revision
	case r.rec.pending != nil:
		r.revision = r.rec.pending.Revision
	}
	r.digest = specDigest(&r.spec, nil)
	r.prune = r.deleteCandidates()
	if err := e.checkAccess(ctx, r); err != nil {
		return nil, err
	}
	if err := e.observe(ctx, r); err != nil {
		return nil, err
	}
	dry, err := e.dryRunDeletes(ctx, r)
	if err != nil {
		return nil, err
	}
	e.log.LogAttrs(ctx, slog.LevelInfo, "manifests delete validated", slog.String(logTask, t.ID), slog.Int64(logAttempt, t.Attempt),
		slog.String(logRelease, r.spec.Release), slog.Int64(logRevision, r.revision), slog.Int(logObjects, len(r.prune)),
		slog.Duration(logDuration, e.now().Sub(start)))

	// The claim fences the deletes: a stale attempt's final delete of the
	// inventory fails on the resourceVersion, and an older attempt that
	// starts later stops in fence.
	if err := e.claim(ctx, r); err != nil {
		return nil, err
	}
	if err := e.pruneAll(ctx, r); err != nil {
		return nil, err
	}
	res := &Result{Release: r.spec.Release, Revision: r.revision, Objects: []ObjectResult{}, DryRun: DryRun{OK: true, Objects: dry}}
	for _, p := range r.prune {
		res.add(p.ref, p.outcome, p.reason)
	}
	doc, err := encodeResult(res)
	if err != nil {
		return nil, err
	}
	if err := e.dropInventory(ctx, r); err != nil {
		return nil, err
	}
	e.log.LogAttrs(ctx, slog.LevelInfo, "manifests release deleted", slog.String(logTask, t.ID), slog.Int64(logAttempt, t.Attempt),
		slog.String(logRelease, r.spec.Release), slog.Int64(logRevision, r.revision),
		slog.Int(logDeleted, res.Counts.Deleted), slog.Int(logSkipped, res.Counts.Skipped), slog.Duration(logDuration, e.now().Sub(start)))
	return doc, nil
}

// dryRunDeletes dry-runs the deletion of every object validation found
// carrying the release's labels, so that one an admission webhook or
// policy protects fails the task before anything is deleted. It returns
// how many it dry-ran.
func (e *Executor) dryRunDeletes(ctx context.Context, r *run) (int, error) {
	var items []*pruneItem
	for _, p := range r.prune {
		if p.snap.Existed && p.snap.Owned {
			items = append(items, p)
		}
	}
	var mu sync.Mutex
	var failed []string
	err := forEach(ctx, e.parallel, items, func(ctx context.Context, p *pruneItem) error {
		opts := metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}
		if p.snap.UID != "" {
			uid := p.snap.UID
			opts.Preconditions = &metav1.Preconditions{UID: &uid}
		}
		err := e.resource(p.ref).Delete(ctx, p.ref.Name, opts)
		switch {
		case err == nil, apierrors.IsNotFound(err), apierrors.IsConflict(err):
			// Gone or replaced since it was read: the delete skips it.
			return nil
		case !kube.PermanentAPIError(err):
			return apiError(ctx, "dry-run delete", p.ref.String(), err)
		}
		mu.Lock()
		defer mu.Unlock()
		failed = append(failed, p.ref.String()+": "+err.Error())
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(failed) > 0 {
		slices.Sort(failed)
		return 0, executor.Terminal(fmt.Errorf("manifests: %w, nothing of release %s was deleted: %s", ErrDryRun, r.spec.Release, list(failed)))
	}
	return len(items), nil
}

// deleteCandidates lists every object the release may hold: the committed
// inventory, plus whatever an unfinished task of the release may have
// written or had still to prune. A retried attempt takes the list from its
// snapshot.
func (r *run) deleteCandidates() []*pruneItem {
	out := r.pruneCandidates()
	p := r.rec.pending
	if r.snap != nil || p == nil {
		return out
	}
	seen := make(map[string]bool, len(out))
	for _, it := range out {
		seen[it.ref.key()] = true
	}
	for _, s := range p.Prune {
		if s.Existed && s.Owned && !seen[s.key()] {
			seen[s.key()] = true
			out = append(out, &pruneItem{ref: s.Ref, unfinished: true})
		}
	}
	return out
}

// dropInventory deletes the inventory Secret, provided this attempt still
// holds the release: the delete is conditional on the resourceVersion of
// this attempt's claim.
func (e *Executor) dropInventory(ctx context.Context, r *run) error {
	return r.writeInventory(ctx, func() (bool, error) {
		rv := r.rec.rv
		err := r.inv.secrets.Delete(ctx, r.inv.name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}})
		switch {
		case err == nil:
			return false, nil
		case !apierrors.IsConflict(err) && !apierrors.IsNotFound(err):
			return false, apiError(ctx, "delete inventory", r.inv.String(), err)
		}
		return true, err
	})
}

func encodeResult(res *Result) (json.RawMessage, error) {
	doc, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("manifests: encode result: %w", err)
	}
	return doc, nil
}
