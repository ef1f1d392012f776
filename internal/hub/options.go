package hub

import (
	"crypto/ed25519"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outposthq/outpost/internal/backoff"
	"github.com/outposthq/outpost/internal/store"
)

// Defaults, each overridable through Options.
const (
	DefaultLeaseDuration     = 60 * time.Second
	DefaultKeepalive         = 20 * time.Second
	DefaultMaxPoll           = 30 * time.Second
	DefaultMaxRequestBytes   = 4 << 20
	DefaultMaxArtifactBytes  = 256 << 20
	DefaultBootstrapTokenTTL = 2 * time.Hour
	MaxBootstrapTokenTTL     = 2 * time.Hour
	DefaultNonceTTL          = time.Minute
	DefaultTaskRetention     = 7 * 24 * time.Hour
	DefaultBlobGrace         = time.Hour
	DefaultSweepInterval     = time.Second
	DefaultGCInterval        = 10 * time.Minute
	DefaultMaxAttempts       = 3
	MaxMaxAttempts           = 50
	connectedWindow          = 45 * time.Second
	signingKeySetting        = "hub.agent_token_signing_key.v1"
	maxClaimBatch            = 64
	exportBatch              = 500
	artifactChunk            = 1 << 20
	compressMinBytes         = 4 << 10
)

// Options configures a Hub.
type Options struct {
	Store  store.Store
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// SigningKey signs agent access tokens. When nil, the key kept in the
	// store is used (created on first start, shared by every replica).
	SigningKey ed25519.PrivateKey
	// Issuer and Audience of agent access tokens.
	Issuer   string
	Audience string
	// AccessTokenTTL is the lifetime of agent access tokens (15 min).
	AccessTokenTTL time.Duration
	LeaseDuration  time.Duration
	// Keepalive is the interval of Watch keep-alives.
	Keepalive time.Duration
	// MaxPoll caps how long a Poll is held.
	MaxPoll time.Duration
	// MaxRequestBytes caps every request message.
	MaxRequestBytes int
	// MaxArtifactBytes caps one artifact.
	MaxArtifactBytes int64
	// RetryBackoff spaces the attempts of a failing task.
	RetryBackoff  backoff.Policy
	TaskRetention time.Duration
	BlobGrace     time.Duration
	SweepInterval time.Duration
	GCInterval    time.Duration
	// Registerer receives the hub's metrics; a fresh registry when nil.
	Registerer prometheus.Registerer
}

// Validate checks required fields and fills defaults.
func (o *Options) Validate() error {
	if o.Store == nil {
		return errors.New("hub: options: Store is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	setDefault(&o.LeaseDuration, DefaultLeaseDuration)
	setDefault(&o.Keepalive, DefaultKeepalive)
	setDefault(&o.MaxPoll, DefaultMaxPoll)
	setDefault(&o.MaxRequestBytes, DefaultMaxRequestBytes)
	setDefault(&o.MaxArtifactBytes, DefaultMaxArtifactBytes)
	setDefault(&o.TaskRetention, DefaultTaskRetention)
	setDefault(&o.BlobGrace, DefaultBlobGrace)
	setDefault(&o.SweepInterval, DefaultSweepInterval)
	setDefault(&o.GCInterval, DefaultGCInterval)
	if o.RetryBackoff.Base <= 0 {
		o.RetryBackoff = backoff.Policy{Base: 2 * time.Second, Max: 5 * time.Minute, Jitter: true}
	}
	if o.MaxPoll > DefaultMaxPoll {
		return errors.New("hub: options: MaxPoll may not exceed 30s")
	}
	if o.LeaseDuration < 3*time.Second {
		return errors.New("hub: options: LeaseDuration must be at least 3s")
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	return nil
}

func setDefault[T int | int64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}
