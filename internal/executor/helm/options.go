package helm

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"k8s.io/client-go/rest"

	"github.com/outposthq/outpost/internal/archive"
	"github.com/outposthq/outpost/internal/executor/manifests"
	"github.com/outposthq/outpost/internal/vault"
)

// Defaults of Options.
const (
	// DefaultMaxChartBytes caps a chart archive as fetched (compressed).
	DefaultMaxChartBytes = 20 << 20
	// DefaultMaxFileBytes caps one file of an unpacked chart.
	DefaultMaxFileBytes = 5 << 20
	// DefaultMaxTotalBytes caps all files of an unpacked chart together,
	// subcharts included.
	DefaultMaxTotalBytes = 100 << 20
	// DefaultMaxObjects caps the objects one release renders to.
	DefaultMaxObjects = 5000
	// DefaultParallelism bounds the API requests in flight per task during
	// validation.
	DefaultParallelism = 16
	// DefaultQPS and DefaultBurst rate-limit the executor's client when
	// the caller's config leaves QPS at 0.
	DefaultQPS   = 1000
	DefaultBurst = 2000
)

// Options configures an Executor. Everything here is the agent's own
// configuration; nothing in a task can change it.
type Options struct {
	// Config reaches the cluster as the agent's identity. Required. It is
	// copied; QPS and Burst are raised when QPS is 0.
	Config *rest.Config
	// Vault resolves the credential references of chart repositories.
	// Required.
	Vault *vault.Resolver
	// HTTPClient is the base client for chart repositories and registries;
	// nil means a client with the system's roots and proxy settings.
	HTTPClient *http.Client
	// Logger receives one record per task and per phase. Nil discards.
	Logger *slog.Logger
	// MaxChartBytes caps a fetched chart archive; 0 means
	// DefaultMaxChartBytes.
	MaxChartBytes int64
	// MaxFileBytes and MaxTotalBytes cap an unpacked chart; 0 means
	// DefaultMaxFileBytes and DefaultMaxTotalBytes.
	MaxFileBytes  int64
	MaxTotalBytes int64
	// MaxObjects caps the objects a release renders to; 0 means
	// DefaultMaxObjects.
	MaxObjects int
	// Deny lists the rules every rendered object must pass. Nil means
	// manifests.DefaultDeny(); an empty, non-nil slice turns it off.
	Deny []manifests.Rule
	// AllowPrivileged turns off the deny rules marked Privileged.
	AllowPrivileged bool
	// Parallelism bounds the API requests in flight per task during
	// validation; 0 means DefaultParallelism.
	Parallelism int
}

// Validate checks the options and fills defaults.
func (o *Options) Validate() error {
	if o.Config == nil {
		return errors.New("helm: options: Config is required")
	}
	if o.Vault == nil {
		return errors.New("helm: options: Vault is required")
	}
	if o.MaxChartBytes < 0 || o.MaxFileBytes < 0 || o.MaxTotalBytes < 0 || o.MaxObjects < 0 || o.Parallelism < 0 {
		return errors.New("helm: options: limits may not be negative")
	}
	if o.MaxChartBytes == 0 {
		o.MaxChartBytes = DefaultMaxChartBytes
	}
	if o.MaxFileBytes == 0 {
		o.MaxFileBytes = DefaultMaxFileBytes
	}
	if o.MaxTotalBytes == 0 {
		o.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if o.MaxObjects == 0 {
		o.MaxObjects = DefaultMaxObjects
	}
	if o.Parallelism == 0 {
		o.Parallelism = DefaultParallelism
	}
	if o.Deny == nil {
		o.Deny = manifests.DefaultDeny()
	}
	for i, r := range o.Deny {
		if r.Kind == "" {
			return fmt.Errorf("helm: options: Deny[%d] (%s): Kind is required", i, r.Name)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// archiveOptions returns the caps for unpacking a chart.
func (o *Options) archiveOptions() archive.Options {
	return archive.Options{MaxFileBytes: o.MaxFileBytes, MaxTotalBytes: o.MaxTotalBytes}
}
