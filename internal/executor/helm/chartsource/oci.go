package chartsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/Masterminds/semver/v3"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/registry"
	"oras.land/oras-go/v2/errdef"
	orasregistry "oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// maxConfigBytes bounds a chart's OCI config blob, which holds only the
// chart's metadata (Chart.yaml as JSON). Manifests are bounded by oras
// itself (4 MiB).
const maxConfigBytes = 1 << 20

// checkOCI checks an oci:// repository and records its reference.
func (t *target) checkOCI() error {
	u := t.repo
	if u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return fmt.Errorf("chartsource: %w: repository %s: an oci:// reference has no query or fragment", ErrInvalidRequest, t.display)
	}
	path := strings.Trim(u.Path, "/")
	name := path[strings.LastIndex(path, "/")+1:]
	if strings.ContainsAny(path, "@:") {
		return fmt.Errorf("chartsource: %w: repository %s: give the version in Version, not as a tag or digest in the reference", ErrInvalidRequest, t.display)
	}
	if name == "" {
		return fmt.Errorf("chartsource: %w: repository %s: no chart name; want oci://host[:port]/path/chart", ErrInvalidRequest, t.display)
	}
	if t.Chart != "" && t.Chart != name {
		return fmt.Errorf("chartsource: %w: repository %s: chart %q differs from the reference's last segment %q; leave Chart empty for oci://", ErrInvalidRequest, t.display, t.Chart, name)
	}
	t.ref = u.Host + "/" + path
	if _, err := orasregistry.ParseReference(t.ref); err != nil {
		return fmt.Errorf("chartsource: %w: repository %s: %w", ErrInvalidRequest, t.display, err)
	}
	return nil
}

// fetchOCI pulls t from an OCI registry with Helm's registry client. An
// exact version is pulled by tag at once; a constraint, an empty version
// or an exact version without such a tag is resolved against the
// registry's tags.
func (f *Fetcher) fetchOCI(ctx context.Context, t *target) (*Chart, error) {
	hc, release, err := f.fetchClient(ctx, t)
	if err != nil {
		return nil, err
	}
	defer release()
	rc, err := newRegistryClient(hc, t)
	if err != nil {
		return nil, fmt.Errorf("chartsource: repository %s: %w", t.display, err)
	}

	if _, err := semver.StrictNewVersion(t.Version); err == nil {
		c, err := f.pull(ctx, rc, t, t.Version)
		if !errors.Is(err, ErrNotFound) {
			return c, err
		}
		// Resolving against the tags finds a spelling the tag lacks (a
		// build suffix) and, when nothing matches, lists what is there.
	}
	tags, err := rc.Tags(t.ref)
	if err != nil {
		return nil, ociError(ctx, t, "listing tags", err)
	}
	version, err := selectVersion(tags, t.Version)
	if err != nil {
		return nil, fmt.Errorf("chartsource: repository %s: %w", t.display, err)
	}
	return f.pull(ctx, rc, t, version)
}

// newRegistryClient builds Helm's registry client for one fetch, with
// credentials in memory only.
//
// registry.NewClient always opens two credential stores. Without the
// options below it would read Helm's registry config.json and use the
// Docker config and credential helpers for authentication. Here the
// authorizer is ours, so neither store is ever asked for a credential,
// nor written to (only Login and Logout write, and they are never called);
// Helm's file is pointed at the null device, so nothing of the user's is
// read for it. The Docker config ($DOCKER_CONFIG or ~/.docker/config.json)
// is still opened and parsed by NewClient if it exists, with no option to
// avoid it; what it holds is never used.
func newRegistryClient(hc *http.Client, t *target) (*registry.Client, error) {
	authorizer := auth.Client{Client: hc, Cache: auth.NewCache()}
	if t.Username != "" {
		// Only the registry's own host:port is answered with them.
		authorizer.Credential = auth.StaticCredential(t.repo.Host, auth.Credential{Username: t.Username, Password: t.Password})
	}
	opts := []registry.ClientOption{
		registry.ClientOptHTTPClient(hc),
		registry.ClientOptAuthorizer(authorizer),
		registry.ClientOptCredentialsFile(os.DevNull),
		registry.ClientOptWriter(io.Discard),
	}
	if t.PlainHTTP {
		opts = append(opts, registry.ClientOptPlainHTTP())
	}
	return registry.NewClient(opts...)
}

// pull fetches version of t, refusing any blob over its cap before it is
// downloaded.
func (f *Fetcher) pull(ctx context.Context, rc *registry.Client, t *target, version string) (*Chart, error) {
	what := "version " + version
	isChart := func(mediaType string) bool {
		return mediaType == registry.ChartLayerMediaType || mediaType == registry.LegacyChartLayerMediaType
	}
	generic := rc.Generic()
	res, err := generic.PullGeneric(t.ref+":"+version, registry.GenericPullOptions{
		AllowedMediaTypes: []string{ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest, registry.ConfigMediaType, registry.ChartLayerMediaType, registry.LegacyChartLayerMediaType},
		PreCopy: func(_ context.Context, d ocispec.Descriptor) error {
			limit := int64(-1)
			switch {
			case isChart(d.MediaType):
				limit = f.maxChart
			case d.MediaType == registry.ConfigMediaType:
				limit = maxConfigBytes
			}
			if limit >= 0 && d.Size > limit {
				return fmt.Errorf("%s: %s is %d bytes: %w of %d bytes", what, d.MediaType, d.Size, ErrTooLarge, limit)
			}
			return nil
		},
	})
	if err != nil {
		return nil, ociError(ctx, t, what, err)
	}
	var config, layer *ocispec.Descriptor
	for i, d := range res.Descriptors {
		switch {
		case d.MediaType == registry.ConfigMediaType:
			config = &res.Descriptors[i]
		case isChart(d.MediaType):
			layer = &res.Descriptors[i]
		}
	}
	if config == nil || layer == nil {
		return nil, fmt.Errorf("chartsource: repository %s: %s: %w: not a Helm chart (no %s config and chart layer)", t.display, what, ErrBadRepository, registry.ConfigMediaType)
	}
	raw, err := generic.GetDescriptorData(res.MemoryStore, *config)
	if err != nil {
		return nil, fmt.Errorf("chartsource: repository %s: %s: %w", t.display, what, err)
	}
	var md chart.Metadata
	if err := json.Unmarshal(raw, &md); err != nil {
		return nil, fmt.Errorf("chartsource: repository %s: %s: %w: chart config: %w", t.display, what, ErrBadRepository, err)
	}
	// Helm tags "+" as "_" (OCI tags cannot hold "+").
	if md.Version != strings.ReplaceAll(version, "_", "+") {
		return nil, fmt.Errorf("chartsource: repository %s: %s: %w: the chart inside is version %q", t.display, what, ErrBadRepository, md.Version)
	}
	archive, err := generic.GetDescriptorData(res.MemoryStore, *layer)
	if err != nil {
		return nil, fmt.Errorf("chartsource: repository %s: %s: %w", t.display, what, err)
	}
	return &Chart{Archive: archive, Name: md.Name, Version: md.Version, Digest: digestOf(archive), Source: t.display}, nil
}

// ociError explains an error from the registry client. Statuses are
// reported by code alone: the registry's message may quote the request.
func ociError(ctx context.Context, t *target, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("chartsource: repository %s: %s: %w (%w)", t.display, what, context.Cause(ctx), err)
	}
	if errors.Is(err, ErrTooLarge) {
		return fmt.Errorf("chartsource: repository %s: %w", t.display, err)
	}
	if errors.Is(err, auth.ErrBasicCredentialNotFound) {
		return fmt.Errorf("chartsource: %w: the registry asks for credentials and none were given", errStatus(t.display, what, http.StatusUnauthorized))
	}
	if resp, ok := errors.AsType[*errcode.ErrorResponse](err); ok {
		return fmt.Errorf("chartsource: %w", errStatus(t.display, what, resp.StatusCode))
	}
	if errors.Is(err, errdef.ErrNotFound) {
		return fmt.Errorf("chartsource: %w", errStatus(t.display, what, http.StatusNotFound))
	}
	return fmt.Errorf("chartsource: repository %s: %s: %w", t.display, what, err)
}
