package manifests

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/client-go/rest"

	"github.com/outposthq/outpost/internal/executor/manifests/bundle"
	"github.com/outposthq/outpost/internal/taskspec"
)

// Defaults of Options.
const (
	// DefaultMaxBundleBytes caps a bundle.
	DefaultMaxBundleBytes = bundle.DefaultMaxBytes
	// DefaultMaxObjects caps the objects of a bundle.
	DefaultMaxObjects = bundle.DefaultMaxObjects
	// DefaultParallelism bounds the API requests in flight per task.
	DefaultParallelism = 24
	// DefaultEstablishTimeout bounds the wait for a CRD to be Established.
	DefaultEstablishTimeout = time.Minute
	// DefaultQPS and DefaultBurst rate-limit the executor's client when
	// the caller's config leaves QPS at 0 (client-go would use 5). A task
	// makes up to three requests per object (read, dry-run, apply; reads
	// are batched in LISTs and unchanged objects are not applied); the API
	// server's priority and fairness protects it beyond that.
	DefaultQPS   = 1000
	DefaultBurst = 2000
	// defaultRequestTimeout bounds one API request when the config sets no
	// timeout.
	defaultRequestTimeout = time.Minute
)

// Options configures an Executor. Everything here is the agent's own
// configuration; nothing in a task can change it.
type Options struct {
	// Config reaches the cluster as the agent's identity. Required. It is
	// copied; QPS and Burst are raised to DefaultQPS and DefaultBurst when
	// QPS is 0, and Timeout set when 0.
	Config *rest.Config
	// AgentNamespace holds the release inventories. Required.
	AgentNamespace string
	// Logger receives one record per task and per phase. Nil discards.
	Logger *slog.Logger
	// MaxBundleBytes caps a bundle; 0 means DefaultMaxBundleBytes.
	MaxBundleBytes int64
	// MaxObjects caps the objects of a bundle; 0 means DefaultMaxObjects.
	MaxObjects int
	// Deny lists the rules every object must pass. Nil means DefaultDeny();
	// an empty, non-nil slice turns the deny list off. Agents add kinds
	// with append(DefaultDeny(), ParseDenyRules(flag)...).
	Deny []Rule
	// AllowPrivileged turns off the rules marked Privileged (privileged
	// containers, host namespaces, hostPath volumes, SYS_ADMIN).
	AllowPrivileged bool
	// Parallelism bounds the API requests in flight per task; 0 means
	// DefaultParallelism.
	Parallelism int
	// EstablishTimeout bounds the wait for a CRD of the bundle to be
	// Established; 0 means DefaultEstablishTimeout.
	EstablishTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Validate checks the options and fills defaults.
func (o *Options) Validate() error {
	if o.Config == nil {
		return errors.New("manifests: options: Config is required")
	}
	if !taskspec.IsDNSLabel(o.AgentNamespace) {
		return fmt.Errorf("manifests: options: AgentNamespace %q: want the agent's namespace (a DNS-1123 label)", o.AgentNamespace)
	}
	if o.MaxBundleBytes < 0 || o.MaxObjects < 0 || o.Parallelism < 0 || o.EstablishTimeout < 0 {
		return errors.New("manifests: options: MaxBundleBytes, MaxObjects, Parallelism and EstablishTimeout may not be negative")
	}
	if o.MaxBundleBytes == 0 {
		o.MaxBundleBytes = DefaultMaxBundleBytes
	}
	if o.MaxObjects == 0 {
		o.MaxObjects = DefaultMaxObjects
	}
	if o.Parallelism == 0 {
		o.Parallelism = DefaultParallelism
	}
	if o.EstablishTimeout == 0 {
		o.EstablishTimeout = DefaultEstablishTimeout
	}
	if o.Deny == nil {
		o.Deny = DefaultDeny()
	}
	for i, r := range o.Deny {
		if r.Kind == "" {
			return fmt.Errorf("manifests: options: Deny[%d] (%s): Kind is required", i, r.Name)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}
