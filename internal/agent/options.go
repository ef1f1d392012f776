package agent

import (
	"errors"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/outposthq/outpost/internal/backoff"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/transport"
)

// Defaults, each overridable through Options.
const (
	DefaultConcurrency   = 8
	DefaultClaimInterval = 30 * time.Second
	DefaultHeartbeat     = 30 * time.Second
	// DefaultFirstMessageTimeout is how long a new Watch may stay silent
	// before the agent decides a proxy is buffering it.
	DefaultFirstMessageTimeout = 10 * time.Second
	// watchFailuresBeforePoll is how many Watch attempts in a row may fail
	// to deliver a first message before the agent long-polls instead.
	watchFailuresBeforePoll = 2
	// retryWatchAfter is how long the agent long-polls before trying a
	// Watch stream again.
	retryWatchAfter  = 5 * time.Minute
	pollWait         = 30 * time.Second
	maxResponseBytes = 8 << 20
)

// Options configures an Agent.
type Options struct {
	// HubURL is the hub's https:// base URL.
	HubURL string
	// HTTPClient reaches the hub; built by transport.NewClient from CAFile
	// when nil.
	HTTPClient *http.Client
	CAFile     string
	// Identity keeps the agent's key and id across restarts.
	Identity IdentityStore
	// BootstrapToken enrolls the agent when Identity holds nothing.
	BootstrapToken string
	// Environment ("tenant/env") the agent expects to serve; optional, but
	// when set a bootstrap token for another environment is refused.
	Environment string
	// Executors by task kind.
	Executors map[string]executor.Executor
	// Concurrency bounds the tasks run at once.
	Concurrency int
	// NewRedactor returns a redactor for one attempt; it must also redact
	// (redact.New) and is injected so executors and agent share one kind.
	NewRedactor func() Redactor
	Logger      *slog.Logger
	// Now is the clock; time.Now when nil.
	Now      func() time.Time
	Version  string
	Hostname string
	// Reconnect spaces reconnects and retried calls.
	Reconnect backoff.Policy
	// ForcePoll skips Watch and long-polls from the start.
	ForcePoll bool
	// ClaimInterval is the safety-net claim period when no wake-up arrives.
	ClaimInterval time.Duration
	// HeartbeatInterval is how often the agent reports it is alive.
	HeartbeatInterval time.Duration
	// FirstMessageTimeout is how long a Watch may stay silent before the
	// agent gives up on it.
	FirstMessageTimeout time.Duration
	// EnvironmentKeys, when set, is the environment keyring whose public
	// halves the agent publishes with RegisterEnvironmentKeys: once after
	// its identity is established (before it claims a task), after each
	// reconnect and every KeyRefreshInterval.
	EnvironmentKeys EnvironmentKeys
	// KeyRefreshInterval is DefaultKeyRefreshInterval when zero.
	KeyRefreshInterval time.Duration
	// Desired, when set, receives the environment's desired state (the
	// reconciler): at start, after each reconnect, on every notice from
	// the hub and on RefreshDesired.
	Desired DesiredState
	// Terraform, when set with Desired, receives the terraform releases
	// of the desired state (the drift checker), which the reconciler does
	// not handle; without it they are left out.
	Terraform TerraformDesired
	// DesiredCache, when set with Desired, keeps the last desired state
	// fetched, for a restart while the hub is unreachable.
	DesiredCache DesiredCache
	// OnExecutorStart, when set, is called as each attempt's executor
	// starts (used by benchmarks to measure dispatch latency).
	OnExecutorStart func(taskID string, epoch int64)
}

// Redactor scrubs secrets from what an attempt reports.
type Redactor interface {
	executor.Redactor
	String(string) string
	Bytes([]byte) []byte
}

// Validate checks the options and fills defaults.
func (o *Options) Validate() error {
	if _, err := transport.CheckHubURL(o.HubURL); err != nil {
		return err
	}
	if o.Identity == nil {
		return errors.New("agent: options: Identity is required")
	}
	if len(o.Executors) == 0 {
		return errors.New("agent: options: no executors")
	}
	if o.NewRedactor == nil {
		return errors.New("agent: options: NewRedactor is required")
	}
	if o.HTTPClient == nil {
		c, err := transport.NewClient(transport.Options{CAFile: o.CAFile})
		if err != nil {
			return err
		}
		o.HTTPClient = c
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	if o.Reconnect.Base <= 0 {
		o.Reconnect = backoff.Policy{Base: 500 * time.Millisecond, Max: time.Minute, Jitter: true}
	}
	if o.ClaimInterval <= 0 {
		o.ClaimInterval = DefaultClaimInterval
	}
	if o.FirstMessageTimeout <= 0 {
		o.FirstMessageTimeout = DefaultFirstMessageTimeout
	}
	if o.KeyRefreshInterval <= 0 {
		o.KeyRefreshInterval = DefaultKeyRefreshInterval
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = DefaultHeartbeat
	}
	return nil
}
