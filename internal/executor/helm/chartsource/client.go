package chartsource

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"

	"github.com/outposthq/outpost/internal/transport"
)

// maxRedirects is how many redirects one request follows.
const maxRedirects = 10

// rootCAs returns the roots to trust for t: base's roots (the system's when
// base has none) plus t.CAPEM.
func (t *target) rootCAs(base *tls.Config) (*x509.CertPool, error) {
	var pool *x509.CertPool
	if base.RootCAs != nil {
		pool = base.RootCAs.Clone()
	} else if sys, err := x509.SystemCertPool(); err == nil && sys != nil {
		pool = sys
	} else {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(t.CAPEM) {
		return nil, fmt.Errorf("chartsource: %w: repository %s: the CA bundle holds no PEM certificate", ErrInvalidRequest, t.display)
	}
	return pool, nil
}

// fetchClient returns the HTTP client for one fetch: the base client with t's
// CA bundle added, a redirect policy that drops credentials once a chain
// leaves its first origin, and requests bound to ctx. release closes the
// connections a client with its own transport opened.
//
// Helm's registry client issues its requests with context.Background(), so
// the fetch's context reaches them only through the transport; that is why
// this client, which lives no longer than one Fetch, holds it.
func (f *Fetcher) fetchClient(ctx context.Context, t *target) (c *http.Client, release func(), err error) {
	base := f.client.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	release = func() {}
	if len(t.CAPEM) > 0 {
		tr, ok := base.(*http.Transport)
		if !ok {
			return nil, nil, fmt.Errorf("chartsource: %w: repository %s: a CA bundle needs a base client whose Transport is an *http.Transport, not %T", ErrInvalidRequest, t.display, base)
		}
		tr = tr.Clone()
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		pool, err := t.rootCAs(tr.TLSClientConfig)
		if err != nil {
			return nil, nil, err
		}
		tr.TLSClientConfig.RootCAs = pool
		base, release = tr, tr.CloseIdleConnections
	}
	c = &http.Client{
		Transport:     &boundTransport{base: base, ctx: ctx},
		CheckRedirect: checkRedirect,
		Jar:           f.client.Jar,
		Timeout:       f.client.Timeout,
	}
	return c, release, nil
}

// checkRedirect implements http.Client.CheckRedirect. Credentials go only
// to the origin (scheme, host and port) a chain started at: once it has
// left that origin, every later hop is treated as foreign, so a foreign
// server cannot bounce the request back with credentials attached.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	origin := transport.Origin(via[0].URL)
	foreign := transport.Origin(req.URL) != origin
	for _, prev := range via[1:] {
		foreign = foreign || transport.Origin(prev.URL) != origin
	}
	if foreign {
		req.Header.Del("Authorization")
		req.Header.Del("Proxy-Authorization")
		req.Header.Del("Cookie")
	}
	return nil
}

// boundTransport cancels every request when the fetch's context ends, on
// top of the request's own context.
type boundTransport struct {
	base http.RoundTripper
	ctx  context.Context
}

func (b *boundTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	stop := context.AfterFunc(b.ctx, func() { cancel(context.Cause(b.ctx)) })
	done := func() {
		stop()
		cancel(nil)
	}
	resp, err := b.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		done()
		return nil, err
	}
	resp.Body = &doneBody{ReadCloser: resp.Body, done: done}
	return resp, nil
}

// doneBody releases a request's context when its body is closed.
type doneBody struct {
	io.ReadCloser
	done func()
}

func (d *doneBody) Close() error {
	err := d.ReadCloser.Close()
	d.done()
	return err
}

// readCapped reads body up to limit bytes and fails with ErrTooLarge past
// it, before reading anything when the declared length is already over.
func readCapped(resp *http.Response, limit int64, what string) ([]byte, error) {
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%s is %d bytes: %w of %d bytes", what, resp.ContentLength, ErrTooLarge, limit)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is %w of %d bytes", what, ErrTooLarge, limit)
	}
	return b, nil
}

// errStatus describes an unexpected HTTP status for what at display.
func errStatus(display, what string, status int) error {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("repository %s: %w (%d)", display, ErrAuth, status)
	case http.StatusNotFound, http.StatusGone:
		return fmt.Errorf("repository %s: %s %w (%d)", display, what, ErrNotFound, status)
	}
	return fmt.Errorf("repository %s: %s: unexpected status %d %s", display, what, status, http.StatusText(status))
}
