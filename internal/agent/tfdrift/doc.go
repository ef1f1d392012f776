// Package tfdrift watches the agent's terraform releases for drift
// (DESIGN.md §7): a Checker plans each release's module against its state
// every interval and reports what would change.
//
// A Checker is given the desired set of terraform releases (SetDesired
// from the hub's desired state, Forget before a destroy task removes one).
// While Start runs (the agent runs it while this replica holds the
// reconciler's leader Lease) each release is checked one interval after it
// was applied or loaded, then every interval, with jitter so that releases
// loaded together spread out. A check holds the agent's task locks of the
// release (release/<name> and tf/<workspace>), so it never races a task of
// the same release or workspace, and runs the terraform executor in
// process on the release's spec: action plan in the detect mode (the
// default of terraform releases), apply in the correct mode, where a plan
// the release's approval policy holds is reported as drift that needs
// approval instead of being applied.
//
// A plan with changes is reported as drift, one object per resource with
// its address and planned action; each drift episode is reported once,
// and so is the return to sync. A correction is reported as such. A
// failed check is reported with its error, redacted, and retried at the
// next interval. Reports that fail are retried with backoff.
package tfdrift
