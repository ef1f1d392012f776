package httpcall

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/outposthq/outpost/internal/redact"
	"github.com/outposthq/outpost/internal/transport"
)

// maxRedirects is how many redirects one call follows.
const maxRedirects = 10

// alwaysStripped are removed on a redirect to another origin, whatever their
// source.
var alwaysStripped = []string{"Authorization", "Proxy-Authorization", "Cookie"}

// redirectPolicy decides what follows a redirect. Credentials go only to the
// origin (scheme, host and port) the spec named: once a chain has left it,
// every later hop is treated as foreign, so a foreign server cannot bounce
// the request back to a path of its choosing with credentials attached.
type redirectPolicy struct {
	follow bool
	// secretHeaders are the canonical names of headers whose value came
	// from a vault reference.
	secretHeaders map[string]bool
	// secretBody says the body holds a resolved value.
	secretBody bool
}

// check implements http.Client.CheckRedirect.
func (p *redirectPolicy) check(req *http.Request, via []*http.Request) error {
	if !p.follow {
		return http.ErrUseLastResponse
	}
	if len(via) > maxRedirects {
		return fmt.Errorf("%w: stopped after %d", ErrTooManyRedirects, maxRedirects)
	}
	origin := via[0].URL
	foreign := !sameOrigin(origin, req.URL)
	for _, prev := range via[1:] {
		foreign = foreign || !sameOrigin(origin, prev.URL)
	}
	if !foreign {
		return nil
	}
	// The client resends the body only on 307 and 308, and never again once
	// a hop dropped it.
	if p.secretBody && req.Body != nil && req.Body != http.NoBody {
		return fmt.Errorf("%w: %s", ErrSecretBodyRedirect, transport.Origin(req.URL))
	}
	for _, name := range alwaysStripped {
		req.Header.Del(name)
	}
	for name := range req.Header {
		if p.secretHeaders[name] || redact.IsCredentialHeader(name) {
			req.Header.Del(name)
		}
	}
	return nil
}

// sameOrigin compares scheme, host and port, with default ports filled in.
func sameOrigin(a, b *url.URL) bool {
	return transport.Origin(a) == transport.Origin(b)
}
