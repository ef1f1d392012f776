package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/outposthq/outpost/internal/audit"
)

// This file holds the release, environment key and secret rules both
// implementations share, as pure functions over rows (as queue.go does for
// tasks): the drivers load and lock rows and write back what these return.

// Audit actions of releases, environment keys and sealed secrets. Their
// details never carry a spec body nor sealed bytes.
const (
	ActionReleaseApplied           = "release.applied"
	ActionReleaseDeleted           = "release.deleted"
	ActionReleaseRemoved           = "release.removed"
	ActionReleaseDriftDetected     = "release.drift_detected"
	ActionReleaseDriftCorrected    = "release.drift_corrected"
	ActionReleaseInSync            = "release.in_sync"
	ActionReleaseDriftCheckFailed  = "release.drift_check_failed"
	ActionReleaseApprovalRequired  = "release.approval_required"
	ActionReleaseApproved          = "release.approved"
	ActionEnvironmentKeyRegistered = "environment.key_registered"
	ActionEnvironmentKeyRetired    = "environment.key_retired"
	ActionSecretSet                = "secret.set"
	ActionSecretDeleted            = "secret.deleted"
)

// ReleaseRow is a release as stored: the Release and whether its deletion
// was requested. A release whose delete task failed keeps DeleteRequested
// (Sync failed): it stays out of the desired state and refuses applies
// until a DeleteRelease succeeds.
type ReleaseRow struct {
	Release
	DeleteRequested bool
}

// KindTerraform is the task kind of terraform releases, as
// taskspec.KindTerraform names it (the store does not import taskspec).
const KindTerraform = "terraform"

// MaxAuditedAddresses caps the resource addresses an audit event lists.
const MaxAuditedAddresses = 20

// ReleaseChange is what one transition does to a release: the row to write
// back (or remove, with its revisions), what its task's result leaves on a
// revision, the audit event to append and the wake-up to emit after
// commit.
type ReleaseChange struct {
	Row ReleaseRow
	// Write is false when nothing changed.
	Write bool
	// Remove deletes the release and its revisions instead of writing it.
	Remove bool
	// Result, when set, is written onto the revision it names.
	Result *RevisionResult
	Event  *audit.Event
	Wakeup *Wakeup
}

// RevisionResult is what a terraform task leaves on its revision: its
// plan, and the module's outputs once applied (nil otherwise).
type RevisionResult struct {
	Revision int64
	Plan     *PlanSummary
	Outputs  []byte
}

// DefaultMode is the mode of a release of kind applied without one:
// detect for terraform (correcting drift means applying changes nobody
// reviewed), correct for the others.
func DefaultMode(kind string) ReleaseMode {
	if kind == KindTerraform {
		return ModeDetect
	}
	return ModeCorrect
}

// ApplyAction is what ApplyRelease does.
type ApplyAction int

// Apply actions.
const (
	// ApplyNothing: the newest revision has the same digest.
	ApplyNothing ApplyAction = iota + 1
	// ApplyRetry: same digest, but the release failed or has drifted: a
	// new task for the newest revision (re-applying it is how an operator
	// puts back what detect mode only reported, or gets a held terraform
	// correction planned for approval).
	ApplyRetry
	// ApplyRevision: a new revision and its task.
	ApplyRevision
)

// PlanApply decides what applying rev does to cur (exists false: no such
// release yet), whose newest revision has digest newestDigest.
func PlanApply(cur ReleaseRow, exists bool, newestDigest string, rev ReleaseRevision) (ApplyAction, error) {
	if !exists {
		return ApplyRevision, nil
	}
	if cur.DeleteRequested {
		return 0, fmt.Errorf("release %q: %w", cur.Name, ErrReleaseDeleting)
	}
	if cur.Kind != rev.Kind {
		return 0, fmt.Errorf("release %q is %s, not %s: %w", cur.Name, cur.Kind, rev.Kind, ErrReleaseKindChanged)
	}
	if newestDigest != rev.Digest {
		return ApplyRevision, nil
	}
	if cur.Sync == SyncFailed || cur.Sync == SyncDrifted {
		return ApplyRetry, nil
	}
	return ApplyNothing, nil
}

// ValidateRevision checks what ApplyRelease needs of p.
func ValidateRevision(p ApplyReleaseParams) error {
	r := p.Revision
	switch {
	case r.Tenant == "" || r.EnvironmentID == "" || r.Release == "":
		return errors.New("release revision: tenant, environment and release are required")
	case r.Kind == "":
		return fmt.Errorf("release %q: kind is required", r.Release)
	case r.Digest == "":
		return fmt.Errorf("release %q: digest is required", r.Release)
	case p.Task == nil:
		return fmt.Errorf("release %q: no task builder", r.Release)
	}
	return nil
}

// NumberRevision returns rev as the revision after cur's newest (the first
// when exists is false), created now.
func NumberRevision(cur ReleaseRow, exists bool, rev ReleaseRevision, now time.Time) ReleaseRevision {
	rev.Revision = 1
	if exists {
		rev.Revision = cur.Revision + 1
	}
	if rev.Mode == "" {
		rev.Mode = DefaultMode(rev.Kind)
	}
	rev.CreatedAt = now
	return rev
}

// CheckReleaseTask checks that a task built for a release targets the
// release's tenant and environment.
func CheckReleaseTask(t Task, tenant, envID, release string) error {
	if t.Tenant != tenant || t.EnvironmentID != envID {
		return fmt.Errorf("release %q: its task %q targets %s/%s", release, t.ID, t.Tenant, t.EnvironmentID)
	}
	if t.ID == "" {
		return fmt.Errorf("release %q: its task has no id", release)
	}
	return nil
}

// PendingRelease returns cur with rev wanted and carried by taskID (cur
// ignored when exists is false).
func PendingRelease(cur ReleaseRow, exists bool, rev ReleaseRevision, taskID string, now time.Time) ReleaseRow {
	if !exists {
		cur = ReleaseRow{Release: Release{
			Tenant: rev.Tenant, EnvironmentID: rev.EnvironmentID, Name: rev.Release, Kind: rev.Kind, CreatedAt: now,
		}}
	}
	cur.Mode = rev.Mode
	cur.Revision = rev.Revision
	cur.Sync = SyncPending
	cur.LastError = ""
	cur.TaskID = taskID
	cur.UpdatedAt = now
	return cur
}

// ReleaseAppliedEvent records rev as r's new revision, carried by taskID.
func ReleaseAppliedEvent(rev ReleaseRevision, env, taskID string) audit.Event {
	details := map[string]any{
		"release":  rev.Release,
		"revision": rev.Revision,
		"digest":   rev.Digest,
		"kind":     rev.Kind,
		"mode":     string(rev.Mode),
		"task":     taskID,
	}
	if rev.RolledBackFrom > 0 {
		details["rolled_back_from"] = rev.RolledBackFrom
	}
	return audit.Event{
		Time: rev.CreatedAt, Tenant: rev.Tenant, Environment: env, Actor: rev.CreatedBy,
		Action: ActionReleaseApplied, Subject: rev.Release, Details: audit.NewDetails(details),
	}
}

// DeleteAction is what DeleteRelease does.
type DeleteAction int

// Delete actions.
const (
	// DeleteNothing: a deletion is already under way.
	DeleteNothing DeleteAction = iota + 1
	// DeleteEnqueue: request the deletion with a new task.
	DeleteEnqueue
)

// PlanDelete decides what DeleteRelease does to cur: nothing while its
// deletion is under way, a new delete task otherwise (first request, or
// the previous delete task failed).
func PlanDelete(cur ReleaseRow) DeleteAction {
	if cur.DeleteRequested && cur.Sync == SyncDeleting {
		return DeleteNothing
	}
	return DeleteEnqueue
}

// DeletingRelease returns cur with its deletion carried by taskID, and
// the event recording the request.
func DeletingRelease(cur ReleaseRow, env, taskID, actor string, now time.Time) ReleaseChange {
	cur.DeleteRequested = true
	cur.Sync = SyncDeleting
	cur.LastError = ""
	cur.TaskID = taskID
	cur.UpdatedAt = now
	e := audit.Event{
		Time: now, Tenant: cur.Tenant, Environment: env, Actor: actor,
		Action: ActionReleaseDeleted, Subject: cur.Name,
		Details: audit.NewDetails(map[string]any{
			"release":          cur.Name,
			"revision":         cur.Revision,
			"applied_revision": cur.AppliedRevision,
			"task":             taskID,
		}),
	}
	// Agents stop reconciling the release at once, before its objects go:
	// a reconciler that still held it would re-create them.
	return ReleaseChange{Row: cur, Write: true, Event: &e, Wakeup: desiredWakeup(cur.Release)}
}

func desiredWakeup(r Release) *Wakeup {
	return &Wakeup{Tenant: r.Tenant, EnvironmentID: r.EnvironmentID, DesiredState: true}
}

// SettleRelease returns what the end of t, a finished task, does to cur,
// the release whose current task it is: success of an apply task makes
// the newest revision the applied one (in sync, drift cleared), success of
// the delete task removes the release, failure or cancellation marks it
// failed. env names the environment in events. A task that is not cur's
// current one, or not finished, changes nothing.
func SettleRelease(cur ReleaseRow, t Task, env string, now time.Time) ReleaseChange {
	if t.ID != cur.TaskID || !t.State.Terminal() {
		return ReleaseChange{Row: cur}
	}
	r := cur
	r.UpdatedAt = now
	switch {
	case t.State == StateSucceeded && r.DeleteRequested:
		e := audit.Event{
			Time: now, Tenant: r.Tenant, Environment: env, Actor: ActorHub,
			Action: ActionReleaseRemoved, Subject: r.Name,
			Details: audit.NewDetails(map[string]any{"release": r.Name, "task": t.ID}),
		}
		return ReleaseChange{Row: r, Remove: true, Event: &e, Wakeup: desiredWakeup(r.Release)}
	case t.State == StateSucceeded && r.Kind == KindTerraform:
		res := decodeTerraformResult(t.Result)
		if res.Plan == nil {
			// Every terraform task plans first and reports it; a result
			// without a plan (cut off for size, or garbled) cannot say
			// whether a plan was applied or is held, so nothing is
			// assumed applied.
			r.Sync = SyncFailed
			r.LastError = "the agent's result of task " + t.ID + " carries no readable plan; apply the release again to plan it anew"
			return ReleaseChange{Row: r, Write: true}
		}
		if res.AwaitingApproval {
			return awaitApproval(r, t, env, res.Plan, now)
		}
		c := appliedRelease(r, t)
		c.Result = &RevisionResult{Revision: r.Revision, Plan: res.Plan, Outputs: res.Outputs}
		return c
	case t.State == StateSucceeded:
		return appliedRelease(r, t)
	default:
		r.Sync = SyncFailed
		r.LastError = t.Error
		if r.LastError == "" {
			r.LastError = "task " + string(t.State)
		}
		return ReleaseChange{Row: r, Write: true}
	}
}

// appliedRelease returns r with its newest revision applied by t.
func appliedRelease(r ReleaseRow, t Task) ReleaseChange {
	r.AppliedRevision = r.Revision
	r.AppliedTaskID = t.ID
	r.Sync = SyncInSync
	r.LastError = ""
	r.Drift = nil
	r.DriftCorrected = false
	r.DriftAt = time.Time{}
	return ReleaseChange{Row: r, Write: true, Wakeup: desiredWakeup(r.Release)}
}

// awaitApproval returns r waiting for an operator to approve plan, which
// t made for r's newest revision and its approval policy held: nothing
// was applied, so AppliedRevision stays.
func awaitApproval(r ReleaseRow, t Task, env string, plan *PlanSummary, now time.Time) ReleaseChange {
	r.Sync = SyncAwaitingApproval
	r.LastError = approvalMessage(r.Name, plan)
	var destroyed []string
	for _, res := range plan.Resources {
		if res.Action == "delete" || res.Action == "replace" {
			destroyed = append(destroyed, res.Address)
		}
	}
	details := map[string]any{
		"release":  r.Name,
		"revision": r.Revision,
		"task":     t.ID,
		"digest":   plan.Digest,
		"add":      plan.Add,
		"change":   plan.Change,
		"destroy":  plan.Destroy,
	}
	if len(destroyed) > 0 {
		if len(destroyed) > MaxAuditedAddresses {
			details["destroyed_more"] = len(destroyed) - MaxAuditedAddresses
			destroyed = destroyed[:MaxAuditedAddresses]
		}
		details["destroyed"] = destroyed
	}
	e := audit.Event{
		Time: now, Tenant: r.Tenant, Environment: env, Actor: ActorHub,
		Action: ActionReleaseApprovalRequired, Subject: r.Name, Details: audit.NewDetails(details),
	}
	return ReleaseChange{Row: r, Write: true, Result: &RevisionResult{Revision: r.Revision, Plan: plan}, Event: &e}
}

// approvalMessage tells the operator why a plan waits and what to do.
func approvalMessage(name string, plan *PlanSummary) string {
	approve := "approve it with outpost release approve " + name
	if plan.Destroy == 1 {
		return "plan destroys 1 resource; " + approve
	}
	if plan.Destroy > 0 {
		return fmt.Sprintf("plan destroys %d resources; %s", plan.Destroy, approve)
	}
	return fmt.Sprintf("plan adds %d, changes %d and destroys %d resources; %s", plan.Add, plan.Change, plan.Destroy, approve)
}

// terraformOutcome is what the store reads of a terraform task's result.
type terraformOutcome struct {
	Plan             *PlanSummary
	AwaitingApproval bool
	Outputs          []byte
}

// decodeTerraformResult reads a terraform task's result (the JSON
// document of taskspec.TerraformResult). A result that does not decode
// yields the zero outcome: applied, without plan nor outputs.
func decodeTerraformResult(raw []byte) terraformOutcome {
	var doc struct {
		Plan             *PlanSummary    `json:"plan"`
		AwaitingApproval bool            `json:"awaiting_approval"`
		Outputs          json.RawMessage `json:"outputs"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &doc) != nil {
		return terraformOutcome{}
	}
	out := terraformOutcome{Plan: doc.Plan, AwaitingApproval: doc.AwaitingApproval}
	if o := bytes.TrimSpace(doc.Outputs); len(o) > 0 && o[0] == '{' {
		out.Outputs = o
	}
	return out
}

// PlanApprove checks that p approves the plan cur's newest revision rev
// awaits: ErrNotAwaitingApproval, or ErrPlanChanged when p names another
// revision or plan.
func PlanApprove(cur ReleaseRow, rev ReleaseRevision, p ApproveReleaseParams) error {
	switch {
	case cur.DeleteRequested:
		return fmt.Errorf("release %q: %w", cur.Name, ErrReleaseDeleting)
	case cur.Sync != SyncAwaitingApproval:
		return fmt.Errorf("release %q is %s: %w", cur.Name, cur.Sync, ErrNotAwaitingApproval)
	case p.Revision != cur.Revision:
		return fmt.Errorf("release %q: revision %d awaits approval, not %d: %w", cur.Name, cur.Revision, p.Revision, ErrPlanChanged)
	case rev.Plan == nil || rev.Plan.Digest == "" || rev.Plan.Digest != p.PlanDigest:
		return fmt.Errorf("release %q revision %d: %w", cur.Name, rev.Revision, ErrPlanChanged)
	}
	return nil
}

// ValidateApprove checks what ApproveRelease needs of p.
func ValidateApprove(p ApproveReleaseParams) error {
	switch {
	case p.Tenant == "" || p.EnvironmentID == "" || p.Name == "":
		return errors.New("approve release: tenant, environment and release are required")
	case p.Revision < 1 || p.PlanDigest == "":
		return fmt.Errorf("approve release %q: a revision and a plan digest are required", p.Name)
	case p.Task == nil:
		return fmt.Errorf("approve release %q: no task builder", p.Name)
	}
	return nil
}

// ReleaseApprovedEvent records actor's approval of the plan digest of r's
// revision, applied by taskID.
func ReleaseApprovedEvent(r Release, env, actor, digest, taskID string, now time.Time) audit.Event {
	return audit.Event{
		Time: now, Tenant: r.Tenant, Environment: env, Actor: actor,
		Action: ActionReleaseApproved, Subject: r.Name,
		Details: audit.NewDetails(map[string]any{
			"release":  r.Name,
			"revision": r.Revision,
			"digest":   digest,
			"task":     taskID,
		}),
	}
}

// RecordDrift returns what drift report p does to cur: nothing unless p
// is for the applied revision of a release not being deleted. The Sync of
// a release whose newer revision is pending or failed is left as it is;
// the drift is stored all the same. A report repeating the stored one
// (same objects, nothing corrected, same error) is stored without an audit
// event, so periodic resyncs do not flood the log.
func RecordDrift(cur ReleaseRow, env string, p DriftParams) ReleaseChange {
	if cur.DeleteRequested || cur.AppliedRevision == 0 || p.Revision != cur.AppliedRevision {
		return ReleaseChange{Row: cur}
	}
	r := cur
	objects := slices.Clone(p.Objects)
	if len(objects) == 0 {
		objects = nil
	}
	owned := r.Sync == SyncInSync || r.Sync == SyncDrifted
	var action string
	switch {
	case len(objects) == 0 && p.Error != "":
		// The check itself failed (a plan that could not run, a list that
		// was refused): nothing is known about the environment, so the
		// drift last found stands and the release is not called in sync.
		action = ActionReleaseDriftCheckFailed
		objects = cur.Drift
	case len(objects) == 0:
		action = ActionReleaseInSync
		if owned {
			r.Sync = SyncInSync
		}
		r.Drift = nil
		r.DriftCorrected = false
	case p.Corrected:
		action = ActionReleaseDriftCorrected
		if owned {
			r.Sync = SyncInSync
		}
		r.Drift = objects
		r.DriftCorrected = true
	default:
		action = ActionReleaseDriftDetected
		if owned {
			r.Sync = SyncDrifted
		}
		r.Drift = objects
		r.DriftCorrected = false
	}
	if owned {
		r.LastError = p.Error
	}
	r.DriftAt = p.Now
	r.UpdatedAt = p.Now
	c := ReleaseChange{Row: r, Write: true}
	repeat := !p.Corrected && cur.Sync == r.Sync && cur.LastError == r.LastError &&
		!cur.DriftCorrected && sameDrift(cur.Drift, objects)
	if repeat {
		return c
	}
	actor := ActorHub
	if p.AgentID != "" {
		actor = AgentActor(p.AgentID)
	}
	details := map[string]any{
		"release":  r.Name,
		"revision": p.Revision,
		"objects":  len(objects),
	}
	if len(objects) > 0 {
		names := make([]string, len(objects))
		for i, o := range objects {
			names[i] = o.String()
		}
		details["drift"] = names
	}
	if p.Error != "" {
		details["error"] = p.Error
	}
	e := audit.Event{
		Time: p.Now, Tenant: r.Tenant, Environment: env, Actor: actor,
		Action: action, Subject: r.Name, Details: audit.NewDetails(details),
	}
	c.Event = &e
	return c
}

// String names o as group/version kind namespace/name, or by its address
// for a Terraform resource.
func (o ObjectDrift) String() string {
	if o.Address != "" {
		return o.Address
	}
	gv := o.Version
	if o.Group != "" {
		gv = o.Group + "/" + o.Version
	}
	name := o.Name
	if o.Namespace != "" {
		name = o.Namespace + "/" + o.Name
	}
	return gv + " " + o.Kind + " " + name
}

func sameDrift(a, b []ObjectDrift) bool {
	return slices.EqualFunc(a, b, func(x, y ObjectDrift) bool {
		return x.Group == y.Group && x.Version == y.Version && x.Kind == y.Kind && x.Namespace == y.Namespace &&
			x.Name == y.Name && x.Deleted == y.Deleted && slices.Equal(x.Fields, y.Fields) && x.Address == y.Address
	})
}

// KeyChange is what registering one environment key does.
type KeyChange struct {
	Key EnvironmentKey
	// Insert a new key, or Retire a known one.
	Insert, Retire bool
	Event          *audit.Event
}

// PlanKeys returns what registering keys, the whole keyring an agent
// holds, does given the known ones: versions it adds, versions it marks
// retired, and known versions it lacks, which are retired too (an agent's
// keyring drops a retired key). ErrKeyMismatch when a known version has
// another recipient.
func PlanKeys(known []EnvironmentKey, keys []EnvironmentKey, env Environment, actor string, now time.Time) ([]KeyChange, error) {
	byVersion := make(map[int]EnvironmentKey, len(known))
	for _, k := range known {
		byVersion[k.Version] = k
	}
	event := func(action string, k EnvironmentKey) *audit.Event {
		return &audit.Event{
			Time: now, Tenant: env.Tenant, Environment: env.Name, Actor: actor,
			Action: action, Subject: env.ID,
			Details: audit.NewDetails(map[string]any{
				"version":     k.Version,
				"fingerprint": k.Fingerprint,
				"retired":     k.Retired,
			}),
		}
	}
	var out []KeyChange
	held := make(map[int]bool, len(keys))
	for _, k := range keys {
		if k.Version < 1 || k.Recipient == "" {
			return nil, fmt.Errorf("environment key version %d: a version >= 1 and a recipient are required", k.Version)
		}
		held[k.Version] = true
		cur, ok := byVersion[k.Version]
		if ok && cur.Recipient != k.Recipient {
			return nil, fmt.Errorf("environment %s key version %d: %w", env.Name, k.Version, ErrKeyMismatch)
		}
		switch {
		case !ok:
			k.EnvironmentID = env.ID
			k.RegisteredAt = now
			k.RegisteredBy = actor
			byVersion[k.Version] = k
			out = append(out, KeyChange{Key: k, Insert: true, Event: event(ActionEnvironmentKeyRegistered, k)})
		case k.Retired && !cur.Retired:
			cur.Retired = true
			byVersion[k.Version] = cur
			out = append(out, KeyChange{Key: cur, Retire: true, Event: event(ActionEnvironmentKeyRetired, cur)})
		}
	}
	for _, k := range known {
		if !held[k.Version] && !k.Retired {
			k.Retired = true
			out = append(out, KeyChange{Key: k, Retire: true, Event: event(ActionEnvironmentKeyRetired, k)})
		}
	}
	return out, nil
}

// CheckSecretVersion checks that v and the task writing it belong
// together and that v carries what its kind needs.
func CheckSecretVersion(v SecretVersion, t Task) error {
	switch {
	case v.Tenant == "" || v.EnvironmentID == "" || v.Name == "":
		return errors.New("secret version: tenant, environment and name are required")
	case t.ID == "":
		return fmt.Errorf("secret %s/%s: its task has no id", v.Namespace, v.Name)
	case t.Tenant != v.Tenant || t.EnvironmentID != v.EnvironmentID:
		return fmt.Errorf("secret %s/%s: its task %q targets %s/%s", v.Namespace, v.Name, t.ID, t.Tenant, t.EnvironmentID)
	case !v.Deleted && len(v.Sealed) == 0:
		return fmt.Errorf("secret %s/%s: a sealed value is required", v.Namespace, v.Name)
	}
	return nil
}

// NewSecretVersion returns v numbered after previous (0: none), written by
// taskID, as stored.
func NewSecretVersion(v SecretVersion, previous int64, taskID, actor string, now time.Time) SecretVersion {
	v.Version = previous + 1
	v.TaskID = taskID
	v.TaskState = StateQueued
	if v.CreatedBy == "" {
		v.CreatedBy = actor
	}
	v.CreatedAt = now
	if v.Deleted {
		v.Sealed = nil
	}
	if len(v.Keys) == 0 {
		v.Keys = nil
	}
	return v
}

// SecretVersionEvent records v's creation: metadata only, never the
// sealed value.
func SecretVersionEvent(v SecretVersion, env, actor string) audit.Event {
	action := ActionSecretSet
	if v.Deleted {
		action = ActionSecretDeleted
	}
	return audit.Event{
		Time: v.CreatedAt, Tenant: v.Tenant, Environment: env, Actor: actor,
		Action: action, Subject: v.Namespace + "/" + v.Name,
		Details: audit.NewDetails(map[string]any{
			"namespace":       v.Namespace,
			"name":            v.Name,
			"version":         v.Version,
			"keys":            v.Keys,
			"key_version":     v.KeyVersion,
			"key_fingerprint": v.KeyFingerprint,
			"adopt":           v.Adopt,
			"task":            v.TaskID,
		}),
	}
}
