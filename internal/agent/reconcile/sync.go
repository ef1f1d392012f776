package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/manifests"
)

// snapshot is a release's spec and generation, read under the mutex.
type snapshot struct {
	spec Release
	gen  uint64
}

// release returns the current spec and generation of name.
func (r *Reconciler) release(name string) (snapshot, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rs, ok := r.releases[name]
	if !ok {
		return snapshot{}, false
	}
	return snapshot{spec: rs.spec, gen: rs.gen}, true
}

// current returns the state of name and whether it is still at generation
// gen. The caller holds r.mu.
func (r *Reconciler) current(name string, gen uint64) (*releaseState, bool) {
	rs, ok := r.releases[name]
	return rs, ok && rs.gen == gen
}

// syncRelease is the full sync of a release: it computes the desired
// objects, starts their informers, dry-runs every object for a fresh
// baseline and compares it with the live object.
func (r *Reconciler) syncRelease(ctx context.Context, name string) error {
	unlock, err := r.relLock.Lock(ctx, []string{name})
	if err != nil {
		return err
	}
	defer unlock()
	defer r.syncs.Add(1)
	snap, ok := r.release(name)
	if !ok {
		return nil
	}
	start := time.Now()
	ds, err := r.desired(ctx, &snap.spec)
	if err != nil {
		r.syncFailed(ctx, name, snap.gen, err)
		if errors.Is(err, ErrDesiredState) || executor.IsTerminal(err) {
			// The next resync or Update tries again.
			return nil
		}
		return err
	}

	r.mu.Lock()
	rs, ok := r.current(name, snap.gen)
	if !ok {
		r.mu.Unlock()
		return nil
	}
	objs := make(map[objKey]*objectState, len(ds.objects))
	watchKeys := map[watchKey]bool{}
	for _, d := range ds.objects {
		st := rs.objects[d.key]
		if st == nil {
			st = &objectState{key: d.key}
		}
		st.desired = d.obj
		objs[d.key] = st
		watchKeys[watchKey{gvr: d.key.gvr, namespace: d.key.namespace}] = true
		if owner, taken := r.index[d.key]; taken && owner != name {
			r.log.LogAttrs(ctx, slog.LevelWarn, "object claimed by two releases", slog.String(logRelease, name), slog.String(logObject, d.key.String()), slog.String(logOtherRelease, owner))
		}
		r.index[d.key] = name
	}
	for k := range rs.objects {
		if _, keep := objs[k]; !keep && r.index[k] == name {
			delete(r.index, k)
		}
	}
	rs.objects = objs
	rs.helmVersion = ds.helmVersion
	rs.err = ""
	r.mu.Unlock()

	r.ensureWatches(ctx)
	r.waitWatches(ctx, watchKeys)

	states := make([]*objectState, 0, len(objs))
	for _, st := range objs {
		states = append(states, st)
	}
	var mu sync.Mutex
	var corrected []ObjectDrift
	var failed []string
	err = executor.ForEach(ctx, r.opts.Parallelism, states, func(ctx context.Context, st *objectState) error {
		c, err := r.syncObject(ctx, snap, st)
		mu.Lock()
		defer mu.Unlock()
		if c != nil {
			corrected = append(corrected, *c)
		}
		if err != nil {
			failed = append(failed, st.key.String()+": "+err.Error())
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.mu.Lock()
	if rs, ok := r.current(name, snap.gen); ok {
		rs.attempted = true
		if len(failed) > 0 {
			slices.Sort(failed)
			rs.err = "objects could not be compared: " + strings.Join(failed, "; ")
		}
	}
	r.checkSyncedLocked()
	r.mu.Unlock()
	r.publish(name, snap.gen, corrected)
	r.log.LogAttrs(ctx, slog.LevelDebug, "release synced", slog.String(logRelease, name), slog.Int64(logRevision, snap.spec.Revision),
		slog.Int(logObjects, len(states)), slog.Duration(logDuration, time.Since(start)))
	if len(failed) > 0 {
		return fmt.Errorf("reconcile: release %s: %d objects could not be compared", name, len(failed))
	}
	return nil
}

// syncFailed records that the desired state of a release could not be
// computed and reports it.
func (r *Reconciler) syncFailed(ctx context.Context, name string, gen uint64, err error) {
	r.log.LogAttrs(ctx, slog.LevelWarn, "release not reconciled", slog.String(logRelease, name), slog.String(logError, err.Error()))
	r.mu.Lock()
	if rs, ok := r.current(name, gen); ok {
		rs.attempted = true
		rs.err = err.Error()
	}
	r.checkSyncedLocked()
	r.mu.Unlock()
	r.publish(name, gen, nil)
}

// syncObject dry-runs one object for a fresh baseline, compares the live
// object with it and acts on drift. It returns the drift it corrected.
func (r *Reconciler) syncObject(ctx context.Context, snap snapshot, st *objectState) (*ObjectDrift, error) {
	if err := r.syncLimit.Wait(ctx); err != nil {
		return nil, err
	}
	base, err := r.dryRun(ctx, snap.spec, st)
	if err != nil {
		return nil, err
	}
	// Read, not the informer's cache: the full sync is also what catches
	// the events an informer missed.
	if err := r.syncLimit.Wait(ctx); err != nil {
		return nil, err
	}
	live, err := r.get(ctx, st.key)
	if err != nil {
		return nil, err
	}
	return r.judge(ctx, snap, st, base, live)
}

// checkObject handles an informer event: it compares the cached live
// object with the cached baseline, without an API call, and only on a
// difference confirms it with a fresh dry run and read.
func (r *Reconciler) checkObject(ctx context.Context, name string, key objKey) error {
	defer r.checks.Add(1)
	r.mu.Lock()
	rs := r.releases[name]
	var st *objectState
	if rs != nil {
		st = rs.objects[key]
	}
	if st == nil || st.base == nil || rs.stale {
		r.mu.Unlock()
		// Not desired, its full sync is still to come, or the desired
		// state is stale and nothing is done until it is refreshed.
		return nil
	}
	base, gen, wasDrifted := st.base, rs.gen, st.drift != nil
	r.mu.Unlock()
	live, ok := r.cached(key)
	if !ok {
		return nil
	}
	if len(driftOf(base, live)) == 0 && live != nil && !wasDrifted {
		return nil
	}

	unlock, err := r.relLock.Lock(ctx, []string{name})
	if err != nil {
		return err
	}
	defer unlock()
	snap, ok := r.release(name)
	if !ok || snap.gen != gen {
		// A full sync of the new desired state is queued.
		return nil
	}
	fresh, err := r.dryRun(ctx, snap.spec, st)
	if err != nil {
		return err
	}
	if live, err = r.get(ctx, key); err != nil {
		return err
	}
	corrected, err := r.judge(ctx, snap, st, fresh, live)
	r.publish(name, gen, optional(corrected))
	return err
}

func optional(d *ObjectDrift) []ObjectDrift {
	if d == nil {
		return nil
	}
	return []ObjectDrift{*d}
}

// driftOf returns the fields of base that live lacks or changed; every
// field when live is nil.
func driftOf(base *baseline, live *unstructured.Unstructured) []string {
	if live == nil {
		return []string{""}
	}
	return base.diff(live)
}

// judge compares live with base, a fresh baseline, and acts: nothing when
// they agree, a report in the detect mode, a correction in the correct
// mode. It returns the drift it corrected.
func (r *Reconciler) judge(ctx context.Context, snap snapshot, st *objectState, base *baseline, live *unstructured.Unstructured) (*ObjectDrift, error) {
	spec := snap.spec
	if r.staleObject(spec, live) {
		r.markStale(ctx, spec.Name, snap.gen, st.key)
		return nil, nil
	}
	var fields []string
	if live != nil {
		fields = base.diff(live)
		if len(fields) == 0 {
			r.setDrift(spec.Name, snap.gen, st, nil, "")
			return nil, nil
		}
	}
	gvk := st.desired.GroupVersionKind()
	drift := &ObjectDrift{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: st.key.namespace, Name: st.key.name, Deleted: live == nil, Fields: fields}
	if r.isStale(spec.Name, snap.gen) {
		// The desired state is being refreshed: leave the object.
		return nil, nil
	}
	if spec.mode() == ModeDetect {
		// A task may have moved the release on (and pruned objects); that
		// is no drift. Correct checks it again under the release lock.
		if moved, err := r.desiredMoved(ctx, snap); err != nil || moved {
			return nil, err
		}
		r.log.LogAttrs(ctx, slog.LevelInfo, "drift detected", slog.String(logRelease, spec.Name), slog.String(logObject, st.key.String()),
			slog.Bool(logDeleted, drift.Deleted), slog.Any(logFields, fields))
		r.setDrift(spec.Name, snap.gen, st, drift, "")
		r.recordDrift(ctx, st, live, drift, false, "")
		return nil, nil
	}
	return r.correct(ctx, snap, st, base, drift)
}

// correct applies the desired object again, holding the release's keyed
// lock, and keeps the live values of ignored fields.
func (r *Reconciler) correct(ctx context.Context, snap snapshot, st *objectState, base *baseline, drift *ObjectDrift) (*ObjectDrift, error) {
	spec := snap.spec
	if r.opts.Lock != nil {
		unlock, err := r.opts.Lock.Lock(ctx, []string{LockKey(spec.Name)})
		if err != nil {
			return nil, fmt.Errorf("reconcile: lock release %s: %w", spec.Name, err)
		}
		defer unlock()
	}
	// A task may have changed the release while the lock was waited for:
	// given a new desired state, or removed it (Forget).
	if r.isStale(spec.Name, snap.gen) {
		return nil, nil
	}
	live, err := r.get(ctx, st.key)
	if err != nil {
		return nil, err
	}
	if r.staleObject(spec, live) {
		r.markStale(ctx, spec.Name, snap.gen, st.key)
		return nil, nil
	}
	if live != nil && len(base.diff(live)) == 0 {
		r.setDrift(spec.Name, snap.gen, st, nil, "")
		return nil, nil
	}
	if stale, err := r.desiredMoved(ctx, snap); err != nil || stale {
		return nil, err
	}
	r.mu.Lock()
	until := st.pausedUntil(time.Now())
	r.mu.Unlock()
	if !until.IsZero() {
		msg := fmt.Sprintf("corrected %d times within %s, another writer keeps changing it: corrections wait until %s; add an ignore rule if that writer owns these fields", flapLimit, flapWindow, until.UTC().Format(time.RFC3339))
		r.log.LogAttrs(ctx, slog.LevelWarn, "drift correction paused", slog.String(logRelease, spec.Name), slog.String(logObject, st.key.String()), slog.Any(logFields, drift.Fields))
		r.setDrift(spec.Name, snap.gen, st, drift, msg)
		r.recordDrift(ctx, st, live, drift, false, msg)
		r.enqueueAfter(item{release: spec.Name, obj: st.key}, time.Until(until))
		return nil, nil
	}
	obj := st.desired.DeepCopy()
	if live != nil {
		for _, p := range base.ignored {
			carry(obj.Object, live.Object, p)
		}
	}
	out, err := r.resource(st.key).Apply(ctx, st.key.name, obj, metav1.ApplyOptions{FieldManager: spec.manager(), Force: true})
	if err != nil {
		msg := err.Error()
		r.log.LogAttrs(ctx, slog.LevelWarn, "drift correction failed", slog.String(logRelease, spec.Name), slog.String(logObject, st.key.String()), slog.String(logError, msg))
		r.setDrift(spec.Name, snap.gen, st, drift, msg)
		r.recordDrift(ctx, st, live, drift, false, msg)
		return nil, fmt.Errorf("reconcile: correct %s: %w", st.key, err)
	}
	nb, err := newBaseline(out, spec.manager(), spec.Ignore)
	r.mu.Lock()
	if err == nil {
		st.base = nb
	}
	st.noteCorrection(time.Now())
	r.corrections++
	r.mu.Unlock()
	r.setDrift(spec.Name, snap.gen, st, nil, "")
	r.log.LogAttrs(ctx, slog.LevelInfo, "drift corrected", slog.String(logRelease, spec.Name), slog.String(logObject, st.key.String()),
		slog.Bool(logDeleted, drift.Deleted), slog.Any(logFields, drift.Fields))
	r.recordDrift(ctx, st, out, drift, true, "")
	return drift, nil
}

// desiredMoved reports whether the release moved past the desired state
// since it was computed: for manifests, the inventory records a newer
// revision (a task applied or pruned objects); for helm, a newer Helm
// revision was deployed. Nothing is corrected then: a manifests release
// asks for a refresh, a helm release is read again.
func (r *Reconciler) desiredMoved(ctx context.Context, snap snapshot) (bool, error) {
	spec := snap.spec
	if spec.Kind == KindManifests {
		rev, err := manifests.RecordedRevision(ctx, r.kube.CoreV1(), r.opts.AgentNamespace, spec.Manifests.Release)
		if err != nil {
			return false, fmt.Errorf("reconcile: release %s: %w", spec.Name, err)
		}
		if rev > spec.Revision {
			r.markStale(ctx, spec.Name, snap.gen, objKey{})
			return true, nil
		}
		return false, nil
	}
	hr, err := r.helmRelease(&spec)
	if err != nil {
		return false, err
	}
	r.mu.Lock()
	rs, ok := r.current(spec.Name, snap.gen)
	moved := ok && rs.helmVersion != hr.Version
	r.mu.Unlock()
	if moved {
		r.log.LogAttrs(ctx, slog.LevelInfo, "Helm release changed; re-reading it", slog.String(logRelease, spec.Name), slog.Int(logHelmRevision, hr.Version))
		r.enqueue(item{release: spec.Name})
	}
	return moved || !ok, nil
}

// staleObject reports whether live carries a higher revision than spec.
func (r *Reconciler) staleObject(spec Release, live *unstructured.Unstructured) bool {
	if live == nil || spec.Kind != KindManifests {
		return false
	}
	rev, err := strconv.ParseInt(live.GetLabels()[manifests.LabelRevision], 10, 64)
	return err == nil && rev > spec.Revision
}

// markStale records that the desired state of a release is older than the
// cluster and asks for a fresh one, once per generation.
func (r *Reconciler) markStale(ctx context.Context, name string, gen uint64, key objKey) {
	r.mu.Lock()
	rs, ok := r.current(name, gen)
	first := ok && !rs.stale
	if first {
		rs.stale = true
	}
	r.mu.Unlock()
	if !first {
		return
	}
	r.log.LogAttrs(ctx, slog.LevelInfo, "desired state is stale; asking for a refresh", slog.String(logRelease, name), slog.String(logObject, objName(key)))
	if r.opts.NeedRefresh != nil {
		r.opts.NeedRefresh(name)
	}
}

// isStale reports whether the release's desired state is known stale,
// replaced or forgotten since generation gen.
func (r *Reconciler) isStale(name string, gen uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	rs, ok := r.current(name, gen)
	return !ok || rs.stale
}

// setDrift records the drift of an object (nil when in sync).
func (r *Reconciler) setDrift(name string, gen uint64, st *objectState, d *ObjectDrift, errMsg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.current(name, gen); !ok {
		return
	}
	st.drift, st.driftErr = d, errMsg
	if d == nil {
		st.event = ""
	}
}

// dryRun applies the desired object in a dry run and stores and returns
// the baseline of the response.
func (r *Reconciler) dryRun(ctx context.Context, spec Release, st *objectState) (*baseline, error) {
	out, err := r.resource(st.key).Apply(ctx, st.key.name, st.desired, metav1.ApplyOptions{FieldManager: spec.manager(), Force: true, DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		return nil, fmt.Errorf("reconcile: dry-run %s: %w", st.key, err)
	}
	b, err := newBaseline(out, spec.manager(), spec.Ignore)
	if err != nil {
		return nil, fmt.Errorf("reconcile: %s: %w", st.key, err)
	}
	r.mu.Lock()
	st.base = b
	r.mu.Unlock()
	return b, nil
}

// get reads an object; nil when it does not exist.
func (r *Reconciler) get(ctx context.Context, k objKey) (*unstructured.Unstructured, error) {
	u, err := r.resource(k).Get(ctx, k.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reconcile: read %s: %w", k, err)
	}
	return u, nil
}

func (r *Reconciler) resource(k objKey) dynamic.ResourceInterface {
	res := r.dyn.Resource(k.gvr)
	if k.namespace == "" {
		return res
	}
	return res.Namespace(k.namespace)
}

// publish reports the state of a release when it changed, and the
// corrections just made.
func (r *Reconciler) publish(name string, gen uint64, corrected []ObjectDrift) {
	now := r.opts.Now()
	r.mu.Lock()
	rs, ok := r.current(name, gen)
	if !ok {
		r.mu.Unlock()
		return
	}
	var objs []ObjectDrift
	var errs []string
	for _, st := range rs.objects {
		if st.drift != nil {
			objs = append(objs, *st.drift)
			if st.driftErr != "" {
				errs = append(errs, st.key.String()+": "+st.driftErr)
			}
		}
	}
	sortDrifts(objs)
	slices.Sort(errs)
	if rs.err != "" {
		errs = append([]string{rs.err}, errs...)
	}
	state := Drift{Release: name, Revision: rs.spec.Revision, Mode: rs.spec.mode(), Objects: objs, Error: strings.Join(errs, "; "), Time: now}
	sig := signature(state)
	send := sig != rs.reported
	rs.reported = sig
	r.mu.Unlock()
	if len(corrected) > 0 {
		sortDrifts(corrected)
		r.reports.push(Drift{Release: name, Revision: state.Revision, Mode: state.Mode, Objects: corrected, Corrected: true, Time: now})
		if state.InSync() {
			// The correction report says the release is in sync.
			return
		}
	}
	if send {
		r.reports.push(state)
	}
}

func sortDrifts(objs []ObjectDrift) {
	slices.SortFunc(objs, func(a, b ObjectDrift) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
}

// signature identifies a release state, to report each change once.
func signature(d Drift) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rev=%d mode=%s err=%q", d.Revision, d.Mode, d.Error)
	for _, o := range d.Objects {
		fmt.Fprintf(&b, "|%s/%s/%s/%s deleted=%t %s", o.Group, o.Kind, o.Namespace, o.Name, o.Deleted, strings.Join(o.Fields, ","))
	}
	return b.String()
}
