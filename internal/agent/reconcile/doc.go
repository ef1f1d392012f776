// Package reconcile keeps a cluster at the desired state of the agent's
// releases (DESIGN.md §7).
//
// A Reconciler is given the desired set of releases (SetDesired from the
// hub, Update after a task of this agent applied one) and watches the
// objects of each with dynamic informers, one per resource and namespace,
// filtered by the outpost.dev/release label. Drift is judged only on the
// fields the release's field manager owns: a server-side apply dry run of
// each desired object yields the server-normalised object and, in its
// managedFields, the exact set of fields the manager owns; the values at
// those fields are the object's baseline. A field another manager set (an
// HPA's replicas, an injected sidecar, an annotation added by hand) is
// never drift; a field of the baseline that changed or vanished is. Ignore
// rules take fields out of the comparison.
//
// Informer events are compared against the cached baseline without an API
// call; a difference is confirmed by a fresh dry run and read before it is
// declared. In the correct mode the object is applied again (server-side
// apply, forcing conflicts, with the release's field manager) under the
// release's keyed lock, keeping the live values of ignored fields; in the
// detect mode it is only reported. Each drift episode is reported once
// through the Reporter, and so is the release's return to sync; a
// Kubernetes Event is recorded on the object. A live object labelled with
// a higher revision than the desired state means the desired state is
// stale: nothing is corrected and NeedRefresh is called.
//
// A periodic full resync recomputes every baseline and compares it with
// the live objects, catching events that were missed. The reconciler never
// deletes: releases leaving the desired set are no longer reconciled, and
// pruning is the work of delete tasks.
//
// RunWhenLeader runs a function only while this replica holds a Lease, so
// that among several agent replicas one reconciles. The agent wires it as:
//
//	r, err := reconcile.New(reconcile.Options{Config: cfg, AgentNamespace: ns,
//		Reporter: hubReporter, NeedRefresh: fetchDesired, Lock: &taskLocks})
//	r.SetDesired(fromHub)                 // again on every change the hub sends
//	go reconcile.RunWhenLeader(ctx, reconcile.LeaderOptions{Client: kc,
//		Namespace: ns, Identity: podName}, r.Start)
//	// after a release task of this agent succeeded:
//	r.Update(rel)
package reconcile
