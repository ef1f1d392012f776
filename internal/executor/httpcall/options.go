package httpcall

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/outposthq/outpost/internal/taskspec"
	"github.com/outposthq/outpost/internal/vault"
)

// Response size limits.
const (
	// DefaultMaxResponseBytes is kept of a response body when neither the
	// options nor the spec say otherwise.
	DefaultMaxResponseBytes = 64 << 10
	// MaxResponseBytesLimit is the hard cap on any response body kept.
	MaxResponseBytesLimit = taskspec.MaxResponseBytesLimit
)

// SecretResolver is what the executor needs from a vault: the value a
// reference stands for, or an error that names the reference but not the
// value. *vault.Resolver implements it.
type SecretResolver interface {
	Resolve(ctx context.Context, ref vault.Ref) (string, error)
}

var _ SecretResolver = (*vault.Resolver)(nil)

// Options configures an Executor.
type Options struct {
	// Client sends the requests. Required: the agent provides one built
	// with its proxy and CA settings. Its CheckRedirect is replaced per
	// request; its Transport and Jar are used as they are.
	Client *http.Client
	// Vault resolves references in header values and the body. Required.
	Vault SecretResolver
	// Logger receives one record per call, never with header values or
	// bodies. Nil discards.
	Logger *slog.Logger
	// MaxResponseBytes is kept of a response body when the spec does not
	// say; 0 means DefaultMaxResponseBytes, at most MaxResponseBytesLimit.
	MaxResponseBytes int64
}

// Validate checks the options and fills defaults.
func (o *Options) Validate() error {
	if o.Client == nil {
		return errors.New("httpcall: options: Client is required")
	}
	if o.Vault == nil {
		return errors.New("httpcall: options: Vault is required")
	}
	if o.MaxResponseBytes < 0 || o.MaxResponseBytes > MaxResponseBytesLimit {
		return fmt.Errorf("httpcall: options: MaxResponseBytes %d: want 0 (default %d) up to %d", o.MaxResponseBytes, DefaultMaxResponseBytes, MaxResponseBytesLimit)
	}
	if o.MaxResponseBytes == 0 {
		o.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
