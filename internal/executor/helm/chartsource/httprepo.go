package chartsource

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	repo "helm.sh/helm/v4/pkg/repo/v1"

	"github.com/outposthq/outpost/internal/transport"
)

// fetchHTTP fetches t from an HTTP(S) chart repository: index.yaml, the
// version t asks for, then the archive its entry names, checked against the
// entry's digest.
func (f *Fetcher) fetchHTTP(ctx context.Context, t *target) (*Chart, error) {
	client, release, err := f.fetchClient(ctx, t)
	if err != nil {
		return nil, err
	}
	defer release()

	indexURL, err := repo.ResolveReferenceURL(t.repo.String(), "index.yaml")
	if err != nil {
		return nil, fmt.Errorf("chartsource: %w: repository %s: %w", ErrInvalidRequest, t.display, err)
	}
	raw, err := f.get(ctx, client, t, indexURL, f.maxIndex, "index.yaml")
	if err != nil {
		return nil, err
	}
	idx, err := parseIndex(raw)
	if err != nil {
		return nil, fmt.Errorf("chartsource: %w", indexError(t.display, err))
	}
	entries, ok := idx.Entries[t.Chart]
	if !ok || len(entries) == 0 {
		return nil, fmt.Errorf("chartsource: repository %s: chart %q %w", t.display, t.Chart, ErrNotFound)
	}
	versions := make([]string, len(entries))
	byVersion := make(map[string]*repo.ChartVersion, len(entries))
	for i, e := range entries {
		versions[i] = e.Version
		if _, dup := byVersion[e.Version]; !dup {
			byVersion[e.Version] = e
		}
	}
	version, err := selectVersion(versions, t.Version)
	if err != nil {
		return nil, fmt.Errorf("chartsource: repository %s: chart %q: %w", t.display, t.Chart, err)
	}
	entry := byVersion[version]
	if len(entry.URLs) == 0 {
		return nil, fmt.Errorf("chartsource: repository %s: chart %q %s: %w: the index lists no URL", t.display, t.Chart, version, ErrBadRepository)
	}
	chartURL, err := repo.ResolveReferenceURL(t.repo.String(), entry.URLs[0])
	if err != nil {
		// The parse error repeats the URL, which may carry userinfo.
		return nil, fmt.Errorf("chartsource: repository %s: chart %q %s: %w: the index's URL for it does not parse", t.display, t.Chart, version, ErrBadRepository)
	}
	archive, err := f.get(ctx, client, t, chartURL, f.maxChart, fmt.Sprintf("chart %q %s", t.Chart, version))
	if err != nil {
		return nil, err
	}
	digest := digestOf(archive)
	if want := entry.Digest; want != "" {
		if !strings.EqualFold(strings.TrimPrefix(want, "sha256:"), strings.TrimPrefix(digest, "sha256:")) {
			return nil, fmt.Errorf("chartsource: repository %s: chart %q %s: %w: the index says %s, the archive is %s", t.display, t.Chart, version, ErrDigestMismatch, want, digest)
		}
	}
	return &Chart{Archive: archive, Name: entry.Name, Version: entry.Version, Digest: digest, Source: t.display}, nil
}

// get downloads rawURL with at most limit bytes of body. Basic auth is sent
// only when rawURL has the repository's origin; what names the document in
// errors.
func (f *Fetcher) get(ctx context.Context, client *http.Client, t *target, rawURL string, limit int64, what string) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("chartsource: repository %s: %s: %w: its URL does not parse", t.display, what, ErrBadRepository)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("chartsource: repository %s: %s: %w: %s is not an http(s) URL", t.display, what, ErrBadRepository, displayURL(u))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), http.NoBody)
	if err != nil {
		return nil, fmt.Errorf("chartsource: repository %s: %s: %w", t.display, what, err)
	}
	if t.Username != "" && transport.Origin(u) == transport.Origin(t.repo) {
		req.SetBasicAuth(t.Username, t.Password)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("chartsource: repository %s: %s: %w", t.display, what, sendError(ctx, err))
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("chartsource: %w", errStatus(t.display, what, resp.StatusCode))
	}
	b, err := readCapped(resp, limit, what)
	if err != nil {
		return nil, fmt.Errorf("chartsource: repository %s: %w", t.display, sendError(ctx, err))
	}
	return b, nil
}

// sendError drops the URL a *url.Error repeats (it may hold a signed query)
// and prefers the context's cause once the fetch was cancelled.
func sendError(ctx context.Context, err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", context.Cause(ctx), err)
	}
	return err
}
