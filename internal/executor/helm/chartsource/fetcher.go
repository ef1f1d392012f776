package chartsource

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/outposthq/outpost/internal/redact"
	"github.com/outposthq/outpost/internal/transport"
)

// Log field names.
const (
	logSource   = "source"
	logChart    = "chart"
	logVersion  = "version"
	logDigest   = "digest"
	logBytes    = "bytes"
	logDuration = "duration"
)

// responseHeaderTimeout bounds the wait for a response's headers on the
// default client; bodies are bounded by size and the caller's context.
const responseHeaderTimeout = 30 * time.Second

// Request names one chart to fetch.
type Request struct {
	// Repository is an HTTP(S) chart repository ("https://charts.example.com/stable")
	// or an OCI chart reference without tag ("oci://host[:port]/path/chart",
	// the chart name being the last segment). It must not carry
	// credentials.
	Repository string
	// Chart is the chart's name in an HTTP repository; empty (or the last
	// segment of Repository) for OCI.
	Chart string
	// Version is an exact version or a semver constraint ("^1.2",
	// "~1.2.3", ">=1 <2"); empty means the latest stable version, without
	// prereleases.
	Version string
	// Username and Password are the repository's credentials, already
	// resolved from vault references; both or neither.
	Username, Password string
	// CAPEM is an extra CA bundle trusted for this repository, besides the
	// base client's roots.
	CAPEM []byte
	// PlainHTTP lets an OCI registry be reached over plain http (tests and
	// localhost registries only). HTTP repositories say so by their scheme.
	PlainHTTP bool
}

// Chart is a fetched chart archive.
type Chart struct {
	// Archive is the chart's .tgz, as the repository served it.
	Archive []byte
	// Name and Version are the chart's, as the repository published them.
	Name, Version string
	// Digest is "sha256:<hex>" of Archive.
	Digest string
	// Source is the repository URL, without credentials.
	Source string
}

// Fetcher fetches chart archives. It is safe for concurrent use and keeps
// no state between fetches: credentials live only as long as one Fetch.
type Fetcher struct {
	client   *http.Client
	maxIndex int64
	maxChart int64
	log      *slog.Logger
}

// New returns a Fetcher.
func New(opts Options) (*Fetcher, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	client := opts.HTTPClient
	if client == nil {
		c, err := transport.NewClient(transport.Options{})
		if err != nil {
			return nil, fmt.Errorf("chartsource: %w", err)
		}
		if tr, ok := c.Transport.(*http.Transport); ok {
			tr.ResponseHeaderTimeout = responseHeaderTimeout
		}
		client = c
	}
	return &Fetcher{client: client, maxIndex: opts.MaxIndexBytes, maxChart: opts.MaxChartBytes, log: opts.Logger}, nil
}

// repoKind tells the two repository kinds apart.
type repoKind int

const (
	kindHTTP repoKind = iota
	kindOCI
)

// target is a validated request.
type target struct {
	Request
	kind repoKind
	// repo is the parsed repository URL.
	repo *url.URL
	// display is the repository URL as errors and logs show it.
	display string
	// ref is an OCI repository's reference, host[:port]/path/chart.
	ref string
	// red scrubs this request's credentials from error text.
	red *redact.Redactor
}

// Fetch downloads the chart req names and returns its archive. Errors name
// the repository without credentials; IsPermanent tells whether a retry
// may help.
func (f *Fetcher) Fetch(ctx context.Context, req Request) (*Chart, error) {
	t, err := parseRequest(req)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	var c *Chart
	switch t.kind {
	case kindOCI:
		c, err = f.fetchOCI(ctx, t)
	default:
		c, err = f.fetchHTTP(ctx, t)
	}
	if err != nil {
		return nil, scrub(t.red, err)
	}
	f.log.LogAttrs(ctx, slog.LevelInfo, "chart fetched",
		slog.String(logSource, c.Source), slog.String(logChart, c.Name), slog.String(logVersion, c.Version),
		slog.String(logDigest, c.Digest), slog.Int(logBytes, len(c.Archive)), slog.Duration(logDuration, time.Since(start)))
	return c, nil
}

// parseRequest checks req and classifies its repository.
func parseRequest(req Request) (*target, error) {
	t := &target{Request: req, red: redact.New()}
	t.red.AddSecret(req.Password)
	if req.Password != "" {
		t.red.AddSecret(req.Username + ":" + req.Password)
	}
	if req.Repository == "" {
		return nil, fmt.Errorf("chartsource: %w: no repository given", ErrInvalidRequest)
	}
	u, err := url.Parse(req.Repository)
	if err != nil {
		// url.Error repeats the raw URL, which may hold credentials.
		return nil, fmt.Errorf("chartsource: %w: repository URL does not parse", ErrInvalidRequest)
	}
	t.repo, t.display = u, displayURL(u)
	if u.User != nil {
		return nil, fmt.Errorf("chartsource: %w: repository %s carries credentials in its URL; give them as vault references (username and password) instead", ErrInvalidRequest, t.display)
	}
	if (req.Username == "") != (req.Password == "") {
		return nil, fmt.Errorf("chartsource: %w: repository %s: a username needs a password and a password a username", ErrInvalidRequest, t.display)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("chartsource: %w: repository %s has no host", ErrInvalidRequest, t.display)
	}
	switch strings.ToLower(u.Scheme) {
	case "https", "http":
		t.kind = kindHTTP
		if err := t.checkHTTP(); err != nil {
			return nil, err
		}
	case "oci":
		t.kind = kindOCI
		if err := t.checkOCI(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("chartsource: %w: repository %s: scheme %q is not supported; use https:// for a chart repository or oci:// for a registry", ErrInvalidRequest, t.display, u.Scheme)
	}
	return t, nil
}

func (t *target) checkHTTP() error {
	if t.Chart == "" {
		return fmt.Errorf("chartsource: %w: repository %s: no chart name given", ErrInvalidRequest, t.display)
	}
	if t.PlainHTTP {
		return fmt.Errorf("chartsource: %w: repository %s: PlainHTTP applies to oci:// registries; an HTTP repository says http:// in its URL", ErrInvalidRequest, t.display)
	}
	if strings.EqualFold(t.repo.Scheme, "http") && t.Password != "" {
		return fmt.Errorf("chartsource: %w: repository %s: refusing to send credentials over plain http; use https", ErrInvalidRequest, t.display)
	}
	return nil
}

// displayURL renders u without userinfo, query or fragment, which may hold
// credentials or signed tokens.
func displayURL(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = nil, "", false, "", ""
	return c.String()
}

// digestOf returns "sha256:<hex>" of b.
func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
