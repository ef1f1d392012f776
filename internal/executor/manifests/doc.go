// Package manifests implements the manifests task kind: a bundle of
// Kubernetes objects applied with server-side apply (field manager
// "outpost"), labelled with the release that owns them, recorded in an
// inventory kept in the agent's namespace, pruned when a later revision
// of the release drops them, and deleted with the release (DESIGN §3, §5,
// §6).
//
// # Validation first
//
// Execute checks the whole bundle before it changes anything, in this
// order, and a bundle failing any step changes nothing; the error (a
// terminal one) names the object, its document, and the permission, field
// or rule at fault:
//
//  1. decode and bound the bundle (package bundle);
//  2. resolve every kind to its resource and scope through discovery, or
//     through a CustomResourceDefinition of the same bundle;
//  3. the agent's deny list (Options.Deny), which a task cannot relax;
//  4. a SelfSubjectAccessReview of every verb the task needs;
//  5. collision defense: an existing object that does not carry this
//     release's ownership labels is skipped and reported, never written or
//     pruned, unless the task adopts it;
//  6. a server-side dry-run apply of every object to be written.
//
// Collision defense reads only metadata: with one paginated LIST for a
// resource with several objects in one namespace when the agent may list
// it there (asked in the same SelfSubjectAccessReview batch; a task never
// needs list, a denied one means a GET per object), else a GET per object.
//
// Two kinds of objects cannot be dry-run before the first write, since the
// API server rejects them until something else of the bundle exists:
// custom resources whose CustomResourceDefinition the bundle introduces,
// and objects in a Namespace the bundle creates. They are dry-run in the
// apply phase, right after the Namespaces and CRDs are applied (and the
// CRDs are Established) and before any other object is written. Those
// Namespaces and CRDs are then the only writes a failing dry-run can leave
// behind; they carry the release's labels and are recorded as pending, so a
// later revision prunes them if it no longer holds them.
//
// # Apply, prune and the inventory
//
// Namespaces and CRDs are applied first, then the other objects in a stable
// kind order (Helm's install order), with bounded parallelism within each
// kind. An object whose dry-run showed that applying it changes nothing is
// reported unchanged and not sent again (see noop.go for how that is
// told), so a task that changes nothing costs one read and one dry-run per
// object. Prune deletes, in the reverse order, what the release's previous
// inventory held and this revision lacks, after checking again that each
// object still carries the release's labels.
//
// The inventory is one Secret per release in the agent's namespace. Before
// the first write it records a pending snapshot: the task, its attempt, the
// revision and, for every target, whether it existed and its
// resourceVersion. A retried attempt of the same task reuses that snapshot,
// so its result is the one an uninterrupted run would have reported. Every
// inventory write is conditional on the Secret's resourceVersion, and an
// attempt that finds a newer attempt of its task recorded stops without
// committing (ErrStaleAttempt).
//
// # Delete
//
// A task with Delete set (taskspec.Manifests.Delete) removes its release,
// for a release the operator deleted on the hub. A release without an
// inventory (never applied, or deleted already) is nothing to do and the
// task succeeds with an empty result, so a repeat is harmless. Otherwise
// the objects of the release are those of the committed revision and,
// when an apply was interrupted, those its pending record lists as written
// or still to prune that exist now: only the inventory knows of them.
// Validation is as for an apply: a SelfSubjectAccessReview of get and
// delete on every object (and get, update and delete on the inventory),
// a read of each, then a server-side dry-run delete of each object to be
// deleted; nothing is deleted when a permission is missing or a dry run
// fails (an admission webhook or policy protecting an object).
//
// The task then records a pending snapshot, as an apply does, and deletes
// in reverse install order every object that still carries the release's
// labels, each with a precondition on the UID validation saw, so an object
// created since under the same name (by a later release) is never deleted.
// Objects that no longer carry the labels are skipped and reported, as are
// a Namespace holding one of them and a CRD defining its type, since
// deleting those would delete it too. Objects already gone are tolerated;
// objects whose deletion waits on finalizers are reported deleted without
// waiting. Last, the inventory Secret is deleted with a precondition on
// the resourceVersion of this attempt's snapshot: an attempt that a newer
// one has superseded fails with ErrStaleAttempt, and an attempt killed
// midway leaves its snapshot for the next attempt of the task, which
// finishes the work and reports what an uninterrupted run would have
// (outcomes "deleted" and "skipped"; Result.Revision is the revision
// deleted). A later release of the same name starts again at revision 1.
package manifests
