package reconcile

// StopWatches stops every informer of r while leaving it in place, as if
// its events were lost: only the full resync sees changes afterwards.
func StopWatches(r *Reconciler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.watches {
		w.cancel()
	}
}
