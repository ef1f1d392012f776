package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

// ErrInsecureHub means the hub URL is not https.
var ErrInsecureHub = errors.New("hub URL must use https")

// maxCABundleBytes bounds a CA file read from disk.
const maxCABundleBytes = 1 << 20

// Options configures NewClient.
type Options struct {
	// CAFile is a PEM bundle of extra roots; the system roots are used too.
	CAFile string
	// Proxy chooses a proxy per request; http.ProxyFromEnvironment when nil,
	// which honours HTTPS_PROXY and NO_PROXY.
	Proxy func(*http.Request) (*url.URL, error)
	// ClientCertificates are presented for mTLS, if any.
	ClientCertificates []tls.Certificate
}

// Validate fills defaults.
func (o *Options) Validate() error {
	if o.Proxy == nil {
		o.Proxy = http.ProxyFromEnvironment
	}
	return nil
}

// CheckHubURL parses a hub URL and refuses anything but https.
func CheckHubURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("transport: hub URL %q: %w", raw, err)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("transport: hub URL %q: %w (the hub always serves TLS 1.2+)", raw, ErrInsecureHub)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("transport: hub URL %q has no host", raw)
	}
	return u, nil
}

// TLSConfig returns the client TLS configuration for opts.
func TLSConfig(opts Options) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: opts.ClientCertificates}
	if opts.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pem, err := readBounded(opts.CAFile, maxCABundleBytes)
		if err != nil {
			return nil, fmt.Errorf("transport: CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("transport: CA file %s holds no PEM certificate", opts.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// NewClient returns the HTTP client for hub calls. Calls bound themselves
// with their context; the client has no global timeout.
func NewClient(opts Options) (*http.Client, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	tlsCfg, err := TLSConfig(opts)
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 opts.Proxy,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   10 * time.Second,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          16,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		HTTP2: &http.HTTP2Config{
			// Pings find a connection a NAT or proxy dropped silently.
			SendPingTimeout: 20 * time.Second,
			PingTimeout:     10 * time.Second,
		},
	}
	return &http.Client{Transport: tr}, nil
}

func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path) //nolint:gosec // the operator names the CA file
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, limit %d", path, st.Size(), limit)
	}
	b := make([]byte, st.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, err
	}
	return b, nil
}
