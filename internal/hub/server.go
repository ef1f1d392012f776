package hub

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// ServeOptions configures Serve.
type ServeOptions struct {
	// Listener, when set, is used instead of listening on Addr.
	Listener net.Listener
	Addr     string
	CertFile string
	KeyFile  string
	Handler  http.Handler
	Logger   *slog.Logger
	// MinVersion is the lowest TLS version offered; TLS 1.2 when zero.
	// Tests lower the maximum to prove agents refuse old versions.
	MinVersion uint16
	MaxVersion uint16
}

// Validate checks the options.
func (o *ServeOptions) Validate() error {
	if o.CertFile == "" || o.KeyFile == "" {
		return errors.New("hub: serve: a TLS certificate and key are required (the hub never serves plain HTTP)")
	}
	if o.Handler == nil {
		return errors.New("hub: serve: Handler is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MinVersion == 0 {
		o.MinVersion = tls.VersionTLS12
	}
	if o.Listener == nil && o.Addr == "" {
		return errors.New("hub: serve: Addr or Listener is required")
	}
	return nil
}

// Serve serves h over TLS (HTTP/2 and HTTP/1.1) until ctx ends, then shuts
// down gracefully. The certificate is re-read when its file changes, so a
// rotated certificate is picked up without a restart.
func Serve(ctx context.Context, opts ServeOptions) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	certs := &certReloader{certFile: opts.CertFile, keyFile: opts.KeyFile}
	if _, err := certs.get(); err != nil {
		return err
	}
	srv := &http.Server{
		Handler: opts.Handler,
		TLSConfig: &tls.Config{ //nolint:gosec // MinVersion is TLS 1.2 unless a test lowers it to prove clients refuse
			MinVersion: opts.MinVersion,
			MaxVersion: opts.MaxVersion,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return certs.get()
			},
		},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	ln := opts.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", opts.Addr); err != nil {
			return fmt.Errorf("hub: listen: %w", err)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("hub: serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// Streams (Watch) outlive a graceful shutdown; close them.
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("hub: serve: %w", err)
	}
	return nil
}

type certReloader struct {
	certFile, keyFile string
	mu                sync.Mutex
	cert              *tls.Certificate
	modTime           time.Time
}

func (r *certReloader) get() (*tls.Certificate, error) {
	st, err := os.Stat(r.certFile)
	if err != nil {
		return nil, fmt.Errorf("hub: TLS certificate: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cert != nil && st.ModTime().Equal(r.modTime) {
		return r.cert, nil
	}
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		if r.cert != nil {
			return r.cert, nil // keep serving the old one mid-rotation
		}
		return nil, fmt.Errorf("hub: TLS certificate: %w", err)
	}
	r.cert, r.modTime = &c, st.ModTime()
	return r.cert, nil
}

// ServeMetrics serves handler (MetricsHandler) over plain HTTP on ln until
// ctx ends. It is for a port inside the cluster that only the monitoring
// system may reach (a NetworkPolicy's business): metrics carry counts and
// names, never a secret, and Prometheus scrapes plain HTTP by default.
func ServeMetrics(ctx context.Context, ln net.Listener, handler http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("hub: metrics: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("hub: metrics: %w", err)
	}
	return nil
}
