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

	// Settings: GetOrCreateSetting stores value under key unless a value
	// exists, and returns the stored one (shared by every replica).
	GetOrCreateSetting(ctx context.Context, key string, value []byte) ([]byte, error)

	Close() error
}
