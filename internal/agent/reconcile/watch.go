package reconcile

import (
	"context"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/outposthq/outpost/internal/executor/manifests"
)

// watch is one running informer over the objects of one resource in one
// namespace that carry the outpost.dev/release label.
type watch struct {
	informer cache.SharedIndexInformer
	cancel   context.CancelFunc
}

func (k watchKey) String() string {
	if k.namespace == "" {
		return k.gvr.String()
	}
	return k.gvr.String() + " in " + k.namespace
}

// ensureWatches starts an informer for every resource and namespace the
// desired objects need and stops the ones no longer needed. The informers
// run until ctx ends or they are stopped.
func (r *Reconciler) ensureWatches(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.neededLocked() {
		if _, ok := r.watches[k]; ok {
			continue
		}
		r.watches[k] = r.startWatch(ctx, k)
	}
	r.pruneWatchesLocked()
}

// neededLocked returns the informers the desired objects need.
func (r *Reconciler) neededLocked() map[watchKey]bool {
	need := map[watchKey]bool{}
	for k := range r.index {
		need[watchKey{gvr: k.gvr, namespace: k.namespace}] = true
	}
	return need
}

// pruneWatchesLocked stops the informers no desired object needs.
func (r *Reconciler) pruneWatchesLocked() {
	need := r.neededLocked()
	for k, w := range r.watches {
		if !need[k] {
			w.cancel()
			delete(r.watches, k)
			r.log.LogAttrs(context.Background(), slog.LevelDebug, "watch stopped", slog.String(logWatch, k.String()))
		}
	}
}

// startWatch starts the informer of k.
func (r *Reconciler) startWatch(ctx context.Context, k watchKey) *watch {
	inf := dynamicinformer.NewFilteredDynamicInformer(r.dyn, k.gvr, k.namespace, 0, cache.Indexers{}, func(o *metav1.ListOptions) {
		o.LabelSelector = manifests.LabelRelease
	}).Informer()
	// Drift is judged on the object's fields, never on its managedFields,
	// which are often most of its size.
	_ = inf.SetTransform(func(obj any) (any, error) {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			u.SetManagedFields(nil)
		}
		return obj, nil
	})
	handle := func(obj any) { r.onEvent(k, obj) }
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: handle,
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*unstructured.Unstructured)
			n, ok2 := newObj.(*unstructured.Unstructured)
			if ok1 && ok2 && o.GetResourceVersion() == n.GetResourceVersion() {
				return
			}
			handle(newObj)
		},
		DeleteFunc: handle,
	})
	_ = inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, _ *cache.Reflector, err error) {
		r.log.LogAttrs(ctx, slog.LevelWarn, "watch failed; retrying", slog.String(logWatch, k.String()), slog.String(logError, err.Error()))
	})
	wctx, cancel := context.WithCancel(ctx) //nolint:gosec // the watch keeps cancel; pruneWatchesLocked and Start call it
	r.watchWG.Go(func() { inf.RunWithContext(wctx) })
	r.log.LogAttrs(ctx, slog.LevelDebug, "watch started", slog.String(logWatch, k.String()))
	return &watch{informer: inf, cancel: cancel}
}

// onEvent queues a check of a desired object that changed.
func (r *Reconciler) onEvent(k watchKey, obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	key := objKey{gvr: k.gvr, namespace: u.GetNamespace(), name: u.GetName()}
	r.mu.Lock()
	defer r.mu.Unlock()
	if rel, ok := r.index[key]; ok {
		r.enqueueLocked(item{release: rel, obj: key})
	}
}

// waitWatches waits until the informers of keys have listed, at most
// SyncTimeout; objects of an informer that has not are read directly.
func (r *Reconciler) waitWatches(ctx context.Context, keys map[watchKey]bool) {
	deadline := time.Now().Add(r.opts.SyncTimeout)
	for {
		pending := false
		r.mu.Lock()
		for k := range keys {
			if w, ok := r.watches[k]; ok && !w.informer.HasSynced() {
				pending = true
				break
			}
		}
		r.mu.Unlock()
		if !pending || time.Now().After(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// cached returns the live object of k from its informer; ok is false when
// the informer has not listed yet.
func (r *Reconciler) cached(k objKey) (live *unstructured.Unstructured, ok bool) {
	r.mu.Lock()
	w := r.watches[watchKey{gvr: k.gvr, namespace: k.namespace}]
	r.mu.Unlock()
	if w == nil || !w.informer.HasSynced() {
		return nil, false
	}
	storeKey := k.name
	if k.namespace != "" {
		storeKey = k.namespace + "/" + k.name
	}
	obj, exists, err := w.informer.GetStore().GetByKey(storeKey)
	if err != nil {
		return nil, false
	}
	if !exists {
		return nil, true
	}
	u, isU := obj.(*unstructured.Unstructured)
	return u, isU
}
