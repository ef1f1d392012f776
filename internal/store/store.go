package store

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/outposthq/outpost/internal/audit"
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound: no such row (or not visible to the tenant asking).
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: a row with that name or id exists.
	ErrAlreadyExists = errors.New("already exists")
	// ErrIdempotencyMismatch: a task id was reused with a different request.
	ErrIdempotencyMismatch = errors.New("task id already used for a different task")
	// ErrStaleEpoch: the task is not leased at that epoch by that agent.
	ErrStaleEpoch = errors.New("stale lease epoch")
	// ErrTokenInvalid: the bootstrap token is unknown, used, expired or for
	// another environment.
	ErrTokenInvalid = errors.New("bootstrap token invalid")
	// ErrNonceInvalid: the nonce is unknown, used or expired.
	ErrNonceInvalid = errors.New("nonce invalid")
	// ErrTooLarge: a blob exceeds the size cap.
	ErrTooLarge = errors.New("too large")
	// ErrDigestMismatch: blob content does not hash to the declared digest.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrReleaseKindChanged: a release's kind cannot change; delete it and
	// create it again.
	ErrReleaseKindChanged = errors.New("release kind cannot change")
	// ErrReleaseDeleting: the release is being deleted.
	ErrReleaseDeleting = errors.New("release is being deleted")
	// ErrKeyMismatch: an environment key version is already registered
	// with another public key.
	ErrKeyMismatch = errors.New("environment key version registered with another key")
	// ErrNotAwaitingApproval: the release has no plan waiting for an
	// operator's approval.
	ErrNotAwaitingApproval = errors.New("release is not awaiting approval")
	// ErrPlanChanged: the plan awaiting approval is not the one the
	// operator reviewed (another revision, or another plan digest).
	ErrPlanChanged = errors.New("the plan changed since it was reviewed")
)

// TaskState is where a task stands.
type TaskState string

// Task states. Succeeded, Failed and Cancelled are terminal.
const (
	StateQueued    TaskState = "queued"
	StateLeased    TaskState = "leased"
	StateSucceeded TaskState = "succeeded"
	StateFailed    TaskState = "failed"
	StateCancelled TaskState = "cancelled"
)

// Terminal reports whether no further attempt will run.
func (s TaskState) Terminal() bool {
	return s == StateSucceeded || s == StateFailed || s == StateCancelled
}

// Outcome is how an attempt ended, as reported by the agent.
type Outcome string

// Attempt outcomes.
const (
	OutcomeSucceeded Outcome = "succeeded"
	OutcomeFailed    Outcome = "failed"
	OutcomeCancelled Outcome = "cancelled"
)

// Tenant owns environments and operator tokens. Name is its identifier.
type Tenant struct {
	Name      string
	CreatedAt time.Time
}

// Environment is a target (a cluster, a VPC) inside a tenant. ID is opaque
// and immutable; (Tenant, Name) is unique.
type Environment struct {
	ID        string
	Tenant    string
	Name      string
	CreatedAt time.Time
}

// Ref is "tenant/name": how agents, the CLI and sealed values name an
// environment.
func (e Environment) Ref() string { return e.Tenant + "/" + e.Name }

// APIToken authenticates an operator inside one tenant. Only the SHA-256
// of the token is stored.
type APIToken struct {
	ID        string
	Tenant    string
	Name      string
	Hash      []byte
	CreatedAt time.Time
	// ExpiresAt zero means no expiry.
	ExpiresAt time.Time
}

// BootstrapToken is a single-use enrollment token for one environment.
// Only its SHA-256 is stored.
type BootstrapToken struct {
	ID            string
	Hash          []byte
	EnvironmentID string
	CreatedAt     time.Time
	ExpiresAt     time.Time
	CreatedBy     string
	// UsedAt zero means unused.
	UsedAt time.Time
	UsedBy string
}

// Agent is an enrolled identity of one environment.
type Agent struct {
	ID            string
	EnvironmentID string
	Tenant        string
	PublicKey     []byte
	Hostname      string
	Version       string
	EnrolledAt    time.Time
	LastSeenAt    time.Time
	Disabled      bool
	DisabledAt    time.Time
}

// Task is one unit of work for one environment; (Tenant, ID) is unique.
type Task struct {
	ID            string
	Tenant        string
	EnvironmentID string
	Kind          string
	Spec          []byte
	ConflictKeys  []string
	Artifacts     []string
	MaxAttempts   int
	// Deadline zero means none.
	Deadline time.Time
	State    TaskState
	// Attempt is the current or last attempt's number and fencing epoch.
	Attempt         int64
	AgentID         string
	CreatedAt       time.Time
	UpdatedAt       time.Time
	FinishedAt      time.Time
	LeaseExpiresAt  time.Time
	NotBefore       time.Time
	CancelRequested bool
	Result          []byte
	Error           string
}

// TaskFilter selects tasks for ListTasks, newest first.
type TaskFilter struct {
	Tenant        string
	EnvironmentID string
	State         TaskState
	Limit         int
	// BeforeCursor continues a listing (the NextCursor of the previous page).
	BeforeCursor string
}

// EnrollParams is one enrollment: consume the token, create the agent.
type EnrollParams struct {
	TokenHash []byte
	// ExpectedEnvironmentID, when set, must match the token's environment.
	ExpectedEnvironmentID string
	Agent                 Agent
	Now                   time.Time
}

// ClaimParams is one claim by one agent.
type ClaimParams struct {
	Tenant        string
	EnvironmentID string
	AgentID       string
	// Kinds the agent runs; empty means all.
	Kinds         []string
	Max           int
	LeaseDuration time.Duration
	Now           time.Time
}

// RenewParams extends a lease.
type RenewParams struct {
	Tenant        string
	TaskID        string
	Epoch         int64
	AgentID       string
	LeaseDuration time.Duration
	Now           time.Time
}

// BackoffFunc returns the wait before attempt+1 after attempt failed.
type BackoffFunc func(attempt int64) time.Duration

// CompleteParams records an attempt's outcome.
type CompleteParams struct {
	Tenant    string
	TaskID    string
	Epoch     int64
	AgentID   string
	Outcome   Outcome
	Result    []byte
	Error     string
	Retryable bool
	Backoff   BackoffFunc
	Now       time.Time
}

// SweepResult says what a Sweep changed.
type SweepResult struct {
	// Requeued tasks whose lease expired and that will be retried.
	Requeued int
	// Failed tasks: lease expired with no attempts left, or deadline passed.
	Failed int
	// Cancelled tasks whose cancellation was pending when the lease expired.
	Cancelled int
}

// Stats is a snapshot for metrics.
type Stats struct {
	Queued int
	Leased int
}

// Wakeup tells listeners that an environment has work, or that a running
// task was cancelled.
type Wakeup struct {
	Tenant        string
	EnvironmentID string
	// CancelTaskID is set when the wake-up is a cancellation.
	CancelTaskID string
	// DesiredState is set when a release of the environment changed what
	// its agents reconcile (a revision applied, a release deleted).
	DesiredState bool
}

// ReleaseSync is where a release stands against its environment.
type ReleaseSync string

// Release sync states.
const (
	SyncPending  ReleaseSync = "pending"
	SyncInSync   ReleaseSync = "in_sync"
	SyncDrifted  ReleaseSync = "drifted"
	SyncFailed   ReleaseSync = "failed"
	SyncDeleting ReleaseSync = "deleting"
	// SyncAwaitingApproval: a terraform plan of the newest revision waits
	// for an operator's approval (ApproveRelease); nothing was changed.
	SyncAwaitingApproval ReleaseSync = "awaiting_approval"
)

// ReleaseMode says what the agent does about drift.
type ReleaseMode string

// Release modes.
const (
	ModeCorrect ReleaseMode = "correct"
	ModeDetect  ReleaseMode = "detect"
)

// IgnoreRule names fields drift detection leaves alone for a kind ("" or
// "*": every kind), as JSON pointers.
type IgnoreRule struct {
	Group string   `json:"group,omitempty"`
	Kind  string   `json:"kind,omitempty"`
	Paths []string `json:"paths"`
}

// ObjectDrift is one object found differing from its release: a
// Kubernetes object (Group to Name), or a Terraform resource (Address set,
// Group to Name empty, Fields its planned action).
type ObjectDrift struct {
	Group     string   `json:"group,omitempty"`
	Version   string   `json:"version"`
	Kind      string   `json:"kind"`
	Namespace string   `json:"namespace,omitempty"`
	Name      string   `json:"name"`
	Deleted   bool     `json:"deleted,omitempty"`
	Fields    []string `json:"fields,omitempty"`
	Address   string   `json:"address,omitempty"`
}

// PlanSummary is a Terraform plan as a release revision keeps it: the
// resource changes counted as the CLI does (a replacement is one add and
// one destroy) and listed, and the digest an operator approves. Its JSON
// form is the "plan" of a terraform task's result.
type PlanSummary struct {
	Add     int `json:"add"`
	Change  int `json:"change"`
	Destroy int `json:"destroy"`
	// Resources lists the resources that change, in plan order.
	Resources  []PlanResource `json:"resources,omitempty"`
	HasChanges bool           `json:"has_changes"`
	// Omitted counts the changed resources left out of Resources.
	Omitted int `json:"omitted,omitempty"`
	// Digest identifies the plan's changes (addresses and actions).
	Digest string `json:"digest,omitempty"`
}

// PlanResource is one resource a plan changes: its address and action
// (create, update, delete or replace).
type PlanResource struct {
	Address string `json:"address"`
	Action  string `json:"action"`
}

// ReleaseRevision is one immutable state of a release; (Tenant,
// EnvironmentID, Release, Revision) is unique.
type ReleaseRevision struct {
	Tenant        string
	EnvironmentID string
	Release       string
	Revision      int64
	// Kind is the task kind carrying it ("manifests", "helm").
	Kind      string
	Spec      []byte
	Artifacts []string
	Mode      ReleaseMode
	Ignore    []IgnoreRule
	// Digest identifies the content (kind, spec, artifacts, mode,
	// ignore): equal digests, equal revisions.
	Digest         string
	Description    string
	CreatedBy      string
	CreatedAt      time.Time
	RolledBackFrom int64
	// Plan is the plan of the revision's last terraform task (applied, or
	// awaiting approval); nil for other kinds and before a task ended.
	Plan *PlanSummary
	// Outputs are the module's outputs (a JSON object, sensitive values
	// already redacted by the agent) after the revision was applied; nil
	// otherwise.
	Outputs []byte
}

// Release is a named desired state of one environment; (Tenant,
// EnvironmentID, Name) is unique.
type Release struct {
	Tenant        string
	EnvironmentID string
	Name          string
	Kind          string
	Mode          ReleaseMode
	// Revision is the newest (wanted) revision.
	Revision int64
	// AppliedRevision is the revision last applied successfully, 0 before.
	AppliedRevision int64
	// AppliedTaskID is the task that applied it.
	AppliedTaskID string
	Sync          ReleaseSync
	LastError     string
	// Drift is what the last drift report found.
	Drift          []ObjectDrift
	DriftCorrected bool
	DriftAt        time.Time
	// TaskID is the task carrying Revision, or the deletion.
	TaskID    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ApplyReleaseParams is one release apply. Revision's Revision and
// CreatedAt are assigned by the store.
type ApplyReleaseParams struct {
	Revision ReleaseRevision
	// Task builds the task that carries the revision, given it numbered.
	Task func(ReleaseRevision) (Task, error)
	Now  time.Time
}

// DeleteReleaseParams is one release deletion.
type DeleteReleaseParams struct {
	Tenant        string
	EnvironmentID string
	Name          string
	Actor         string
	// Task builds the task that removes the release's objects.
	Task func(Release) (Task, error)
	Now  time.Time
}

// ApproveReleaseParams is one approval of the plan a release's newest
// revision is awaiting.
type ApproveReleaseParams struct {
	Tenant        string
	EnvironmentID string
	Name          string
	// Revision and PlanDigest name the plan the operator reviewed: they
	// must be the release's newest revision and its stored plan's digest.
	Revision   int64
	PlanDigest string
	Actor      string
	// Task builds the task that applies the approved plan, given the
	// revision.
	Task func(ReleaseRevision) (Task, error)
	Now  time.Time
}

// DesiredRelease is a release's applied revision, as agents reconcile it.
type DesiredRelease struct {
	Release  Release
	Revision ReleaseRevision
}

// DriftParams is one drift report of an agent.
type DriftParams struct {
	Tenant        string
	EnvironmentID string
	Release       string
	Revision      int64
	// Objects empty means in sync.
	Objects   []ObjectDrift
	Corrected bool
	Error     string
	AgentID   string
	Now       time.Time
}

// EnvironmentKey is the public half of one version of an environment's
// key; (EnvironmentID, Version) is unique.
type EnvironmentKey struct {
	EnvironmentID string
	Version       int
	// Recipient is the age X25519 recipient ("age1…").
	Recipient    string
	Fingerprint  string
	Retired      bool
	RegisteredAt time.Time
	RegisteredBy string
}

// SecretVersion is one version of a sealed secret: ciphertext and
// metadata, never plaintext. (Tenant, EnvironmentID, Namespace, Name,
// Version) is unique.
type SecretVersion struct {
	Tenant        string
	EnvironmentID string
	Namespace     string
	Name          string
	Version       int64
	// Keys are the data keys inside the sealed value.
	Keys           []string
	KeyVersion     int
	KeyFingerprint string
	// Sealed is the seal.Sealed JSON document; empty when Deleted.
	Sealed  []byte
	Deleted bool
	Adopt   bool
	// TaskID is the task writing or deleting this version; TaskState its
	// state when read.
	TaskID    string
	TaskState TaskState
	CreatedBy string
	CreatedAt time.Time
}

// BlobReader streams a stored blob chunk by chunk.
type BlobReader interface {
	io.ReadCloser
	// Size is the blob's total size.
	Size() int64
}

// Store is the hub's storage. Every method is one transaction; methods that
// change state append their audit events in that same transaction. Actor
// strings name who acted ("operator:<token id>", "agent:<id>", "hub").
type Store interface {
	// Tenants and operator tokens.
	CreateTenant(ctx context.Context, t Tenant, actor string) error
	GetTenant(ctx context.Context, name string) (Tenant, error)
	CreateAPIToken(ctx context.Context, tok APIToken, actor string) error
	// GetAPITokenByHash returns ErrNotFound for unknown or expired tokens.
	GetAPITokenByHash(ctx context.Context, hash []byte, now time.Time) (APIToken, error)

	// Environments.
	CreateEnvironment(ctx context.Context, env Environment, actor string) error
	GetEnvironment(ctx context.Context, id string) (Environment, error)
	GetEnvironmentByName(ctx context.Context, tenant, name string) (Environment, error)
	ListEnvironments(ctx context.Context, tenant string) ([]Environment, error)

	// Enrollment.
	CreateBootstrapToken(ctx context.Context, tok BootstrapToken, actor string) error
	// EnrollAgent consumes the bootstrap token and creates the agent,
	// atomically; ErrTokenInvalid leaves the token as it was.
	EnrollAgent(ctx context.Context, p EnrollParams) (Agent, error)
	CreateNonce(ctx context.Context, nonce []byte, expiresAt time.Time) error
	// ConsumeNonce deletes the nonce; ErrNonceInvalid if absent or expired.
	ConsumeNonce(ctx context.Context, nonce []byte, now time.Time) error

	// Agents.
	GetAgent(ctx context.Context, id string) (Agent, error)
	// ListAgents lists a tenant's agents, of one environment if envID is set.
	ListAgents(ctx context.Context, tenant, envID string) ([]Agent, error)
	DisableAgent(ctx context.Context, tenant, id, actor string, now time.Time) (Agent, error)
	TouchAgent(ctx context.Context, id, version string, now time.Time) error

	// Queue.
	// EnqueueTask inserts t as queued (attempt 0) and wakes its environment;
	// with an existing id it returns the stored task and false, or
	// ErrIdempotencyMismatch when kind, environment, spec, keys or
	// artifacts differ.
	EnqueueTask(ctx context.Context, t Task, actor string) (Task, bool, error)
	GetTask(ctx context.Context, tenant, id string) (Task, error)
	// ListTasks returns a page and the cursor of the next ("" at the end).
	ListTasks(ctx context.Context, f TaskFilter) ([]Task, string, error)
	// ClaimTasks leases up to Max runnable tasks of the environment, oldest
	// first, skipping any whose conflict key is held by a leased task or by
	// an older task not yet finished; each claim increments Attempt. Queued
	// tasks past their deadline are failed on the way.
	ClaimTasks(ctx context.Context, p ClaimParams) ([]Task, error)
	RenewLease(ctx context.Context, p RenewParams) (Task, error)
	// CompleteTask records the outcome of the attempt at p.Epoch. A repeat
	// of an already recorded report returns the task unchanged; any other
	// mismatch is ErrStaleEpoch.
	CompleteTask(ctx context.Context, p CompleteParams) (Task, error)
	// CancelTask cancels a queued task at once, marks a leased one
	// CancelRequested (and wakes the environment with CancelTaskID), and
	// leaves a finished one as it is.
	CancelTask(ctx context.Context, tenant, id, actor string, now time.Time) (Task, error)
	// Sweep expires leases (retry with backoff, fail, or cancel), fails
	// queued tasks past their deadline, wakes environments whose retries
	// became runnable since the last sweep, and deletes expired nonces.
	Sweep(ctx context.Context, now time.Time, backoff BackoffFunc) (SweepResult, error)
	// ExtendLeases pushes every lease expiring before until to until, so a
	// restarted hub gives agents time to reconnect.
	ExtendLeases(ctx context.Context, until time.Time) (int, error)
	Stats(ctx context.Context) (Stats, error)
	// DeleteFinishedTasks deletes terminal tasks finished before cutoff.
	DeleteFinishedTasks(ctx context.Context, cutoff time.Time) (int, error)

	// Wake-ups. ListenWakeups calls fn for every wake-up emitted by any hub
	// replica on this store, until ctx ends.
	ListenWakeups(ctx context.Context, fn func(Wakeup)) error

	// Audit.
	AppendAudit(ctx context.Context, e audit.Event) (audit.Event, error)
	// ListAudit returns a tenant's events with Seq > afterSeq, ascending.
	ListAudit(ctx context.Context, tenant string, afterSeq int64, limit int, action string) ([]audit.Event, error)

	// Artifacts: content-addressed blobs per tenant.
	// PutBlob streams r into the store; digest ("sha256:<hex>") may be empty,
	// in which case it is computed. ErrTooLarge past maxSize and
	// ErrDigestMismatch leave nothing stored.
	PutBlob(ctx context.Context, tenant, digest string, r io.Reader, maxSize int64) (string, int64, error)
	OpenBlob(ctx context.Context, tenant, digest string) (BlobReader, error)
	BlobExists(ctx context.Context, tenant, digest string) (bool, error)
	// DeleteUnreferencedBlobs deletes blobs no task references that were
	// stored before cutoff.
	DeleteUnreferencedBlobs(ctx context.Context, cutoff time.Time) (int, error)

	// Releases. A release's tasks are enqueued in the same transaction as
	// the change that needs them; CompleteTask, Sweep and CancelTask
	// settle the release whose current task (Release.TaskID) ends: success
	// of an apply task sets AppliedRevision (Sync in_sync, drift cleared),
	// success of the delete task removes the release and its revisions,
	// failure or cancellation sets Sync failed and LastError. A terraform
	// task's result also stores its plan (and, once applied, its outputs)
	// on the revision; a plan its approval policy held sets Sync
	// awaiting_approval instead, audited as release.approval_required.
	// Settling an applied revision or a deletion wakes the environment
	// with DesiredState set.
	//
	// ApplyRelease makes p.Revision the release's newest revision (number
	// assigned: previous + 1) and enqueues the task p.Task builds for it,
	// unless the newest revision has the same Digest: then nothing changes
	// and created is false, except that a release whose Sync is failed
	// gets a new task for that revision. ErrReleaseKindChanged,
	// ErrReleaseDeleting.
	ApplyRelease(ctx context.Context, p ApplyReleaseParams) (Release, ReleaseRevision, bool, error)
	GetRelease(ctx context.Context, tenant, envID, name string) (Release, error)
	// ListReleases lists a tenant's releases by environment and name, of
	// one environment if envID is set.
	ListReleases(ctx context.Context, tenant, envID string) ([]Release, error)
	// ListReleaseRevisions returns a release's revisions, newest first.
	ListReleaseRevisions(ctx context.Context, tenant, envID, name string) ([]ReleaseRevision, error)
	GetReleaseRevision(ctx context.Context, tenant, envID, name string, revision int64) (ReleaseRevision, error)
	// DeleteRelease sets Sync deleting and enqueues the task p.Task builds
	// (which removes the release's objects); the release goes when that
	// task succeeds. Deleting a release already deleting enqueues nothing
	// unless its delete task failed.
	DeleteRelease(ctx context.Context, p DeleteReleaseParams) (Release, error)
	// ListDesiredReleases returns the applied revision of each release of
	// the environment that has one and is not being deleted.
	ListDesiredReleases(ctx context.Context, tenant, envID string) ([]DesiredRelease, error)
	// RecordDrift stores an agent's drift report for the applied revision
	// and audits it (release.drift_detected, release.drift_corrected or
	// release.in_sync). A report for another revision than the applied
	// one changes nothing and returns the release as it is.
	RecordDrift(ctx context.Context, p DriftParams) (Release, error)
	// ApproveRelease lets the plan a terraform release's newest revision
	// awaits be applied: it enqueues the task p.Task builds and sets the
	// release pending, audited as release.approved. ErrNotFound,
	// ErrNotAwaitingApproval, and ErrPlanChanged when p.Revision is not
	// the newest revision or p.PlanDigest not its plan's digest; a refused
	// approval changes nothing.
	ApproveRelease(ctx context.Context, p ApproveReleaseParams) (Release, Task, error)
	// TaskCounts counts an environment's unfinished tasks and those failed
	// since the given time.
	TaskCounts(ctx context.Context, tenant, envID string, failedSince time.Time) (active, failed int, err error)

	// Environment keys (public halves only) and sealed secrets.
	// RegisterEnvironmentKeys records keys as the whole keyring an agent
	// holds: it adds key versions not yet known, marks retired ones, and
	// retires known versions keys lacks (the keyring dropped them); a
	// known version with another recipient is ErrKeyMismatch and changes
	// nothing; a retired key is never un-retired. Audited as
	// environment.key_registered/key_retired.
	RegisterEnvironmentKeys(ctx context.Context, tenant, envID string, keys []EnvironmentKey, actor string, now time.Time) error
	// ListEnvironmentKeys returns the keys by version, ascending.
	ListEnvironmentKeys(ctx context.Context, tenant, envID string) ([]EnvironmentKey, error)
	// PutSecretVersion stores v as the secret's next version (number
	// assigned) and enqueues task, which writes or deletes the Kubernetes
	// Secret, in one transaction; audited as secret.set or secret.deleted
	// (metadata only).
	PutSecretVersion(ctx context.Context, v SecretVersion, task Task, actor string) (SecretVersion, Task, error)
	// ListSecrets returns the newest version of each secret of the
	// environment (deleted ones included, marked), by namespace and name.
	ListSecrets(ctx context.Context, tenant, envID string) ([]SecretVersion, error)
	// SecretHistory returns a secret's versions, newest first.
	SecretHistory(ctx context.Context, tenant, envID, namespace, name string) ([]SecretVersion, error)

	// Settings: GetOrCreateSetting stores value under key unless a value
	// exists, and returns the stored one (shared by every replica).
	GetOrCreateSetting(ctx context.Context, key string, value []byte) ([]byte, error)

	Close() error
}
