package chartsource

import (
	"fmt"
	"log/slog"
	"net/http"
)

// Size limits.
const (
	// DefaultMaxIndexBytes bounds a repository's index.yaml when the
	// options do not say otherwise.
	DefaultMaxIndexBytes = 16 << 20
	// DefaultMaxChartBytes bounds a chart archive (compressed) when the
	// options do not say otherwise.
	DefaultMaxChartBytes = 20 << 20
	// maxLimit is the largest cap the options accept: the fetcher holds
	// what it reads in memory.
	maxLimit = 1 << 30
)

// Options configures a Fetcher.
type Options struct {
	// HTTPClient is the base client for both repository kinds: its
	// Transport, Jar and Timeout are used, its CheckRedirect is replaced by
	// the fetcher's credential policy. Its Transport must be an
	// *http.Transport when a request carries CAPEM. Nil means the agent's default client (proxy from the environment,
	// TLS 1.2+, bounded dial, handshake and response-header waits).
	HTTPClient *http.Client
	// MaxIndexBytes bounds index.yaml; 0 means DefaultMaxIndexBytes.
	MaxIndexBytes int64
	// MaxChartBytes bounds the chart archive; 0 means DefaultMaxChartBytes.
	MaxChartBytes int64
	// Logger receives one record per fetch, never with credentials. Nil
	// discards.
	Logger *slog.Logger
}

// Validate checks the options and fills defaults.
func (o *Options) Validate() error {
	for _, l := range []struct {
		name string
		v    *int64
		def  int64
	}{{"MaxIndexBytes", &o.MaxIndexBytes, DefaultMaxIndexBytes}, {"MaxChartBytes", &o.MaxChartBytes, DefaultMaxChartBytes}} {
		if *l.v < 0 || *l.v > maxLimit {
			return fmt.Errorf("chartsource: options: %s %d: want 0 (default %d) up to %d", l.name, *l.v, l.def, maxLimit)
		}
		if *l.v == 0 {
			*l.v = l.def
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
