package terraform

// Modules from OCI registries.
//
// A spec's url may name an OCI artifact, oci://host/repository:tag or
// oci://host/repository@sha256:<digest>. The agent pulls it with oras-go
// through Options.HTTPClient (so the agent's CA bundle and proxy settings
// apply), over https unless the spec sets plain_http. The reference's
// manifest (an OCI image manifest, or a Docker schema 2 manifest; at most
// maxManifestBytes, verified against its digest) must list exactly one
// layer, a gzip'd tar archive of one of the media types isModuleLayer
// accepts. A layer declaring more than Options.MaxModuleBytes is refused
// before it is downloaded; it is read up to its declared size and its
// digest verified, then unpacked by the same rules as any other module
// archive. An image index is refused: a module has no platform.
//
// Username and password are resolved through Options.Vault (the password
// is always a vault reference, the username may be one), registered with
// the task's redactor, held in memory for the pull only, and offered to the
// registry's own host alone. Errors never quote them, nor the registry's
// own messages, which may echo a request: a refusal is reported by its
// status. An unknown reference, refused credentials, a manifest that is
// not a module's and a layer too large or not matching its digest are
// terminal; network errors, 5xx, 408 and 429 may be retried.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/taskspec"
	"github.com/outposthq/outpost/internal/vault"
)

// maxManifestBytes caps a module artifact's manifest.
const maxManifestBytes = 4 << 20

// mediaTypeDockerManifest is Docker's schema 2 image manifest, which some
// tools push instead of an OCI one; its layers are read the same way.
const mediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"

// Log keys of a pull.
const (
	logModuleSource = "module_source"
	logModuleDigest = "module_digest"
)

// moduleLayerTypes lists the layer media types isModuleLayer accepts, for
// error messages.
const moduleLayerTypes = ocispec.MediaTypeImageLayerGzip + ", application/tar+gzip, application/vnd.cncf.flux.content.v1.tar+gzip, application/vnd.docker.image.rootfs.diff.tar.gzip"

// isModuleLayer reports whether a layer of mediaType is a gzip'd tar
// archive: the OCI image layer (what `oras push` and `crane append` make of
// a .tar.gz), the generic application/tar+gzip, Flux's `flux push
// artifact` content layer, and Docker's gzip'd layer. OpenTofu's own
// module packages (archive/zip layers) are not accepted.
func isModuleLayer(mediaType string) bool {
	switch mediaType {
	case ocispec.MediaTypeImageLayerGzip,
		"application/tar+gzip",
		"application/vnd.cncf.flux.content.v1.tar+gzip",
		"application/vnd.docker.image.rootfs.diff.tar.gzip":
		return true
	}
	return false
}

// pullModule returns the module archive of the OCI artifact s.URL names.
func (e *Executor) pullModule(ctx context.Context, t executor.Task, s *taskspec.Terraform) ([]byte, error) {
	ref, err := taskspec.ParseOCIModuleRef(s.URL)
	if err != nil {
		return nil, executor.Terminal(fmt.Errorf("%w: %w", ErrModule, err))
	}
	repo, err := remote.NewRepository(ref.Reference)
	if err != nil {
		return nil, executor.Terminal(fmt.Errorf("%w: url %q: not a registry reference: %w", ErrModule, s.URL, err))
	}
	repo.PlainHTTP = s.PlainHTTP
	repo.ManifestMediaTypes = []string{ocispec.MediaTypeImageManifest, mediaTypeDockerManifest}
	repo.MaxMetadataBytes = maxManifestBytes
	client := &auth.Client{
		Client: e.opts.HTTPClient,
		Cache:  auth.NewCache(),
		Header: http.Header{"User-Agent": {"outpost-agent"}},
	}
	if s.Password != "" {
		cred, err := e.registryCredential(ctx, t, s)
		if err != nil {
			return nil, err
		}
		// Only the registry's own host:port is answered with them; a token
		// service on another host gets them through the challenge oras
		// follows, as every registry client does.
		client.Credential = auth.StaticCredential(repo.Reference.Registry, cred)
	}
	repo.Client = client

	desc, raw, err := oras.FetchBytes(ctx, repo, repo.Reference.Reference, oras.FetchBytesOptions{MaxBytes: maxManifestBytes})
	if err != nil {
		return nil, registryError(ctx, s.URL, "manifest", err)
	}
	layer, err := moduleLayer(s.URL, desc, raw, e.opts.MaxModuleBytes)
	if err != nil {
		return nil, err
	}
	rc, err := repo.Blobs().Fetch(ctx, layer)
	if err != nil {
		return nil, registryError(ctx, s.URL, "layer "+layer.Digest.String(), err)
	}
	defer func() { _ = rc.Close() }()
	// content.ReadAll reads at most layer.Size bytes, fails on more, and
	// verifies the digest; the limit here makes the bound plain.
	data, err := content.ReadAll(io.LimitReader(rc, layer.Size+1), layer)
	if err != nil {
		return nil, registryLayerError(ctx, s.URL, layer, err)
	}
	e.opts.Logger.Info("terraform module pulled", logTask, t.ID, logModuleSource, s.URL, logModuleDigest, desc.Digest.String())
	return data, nil
}

// moduleLayer checks the manifest raw that desc describes and returns its
// one module layer, refused if it declares more than limit bytes.
func moduleLayer(source string, desc ocispec.Descriptor, raw []byte, limit int64) (ocispec.Descriptor, error) {
	refuse := func(format string, args ...any) (ocispec.Descriptor, error) {
		return ocispec.Descriptor{}, executor.Terminal(fmt.Errorf("%w: %s: %s", ErrModule, source, fmt.Sprintf(format, args...)))
	}
	switch desc.MediaType {
	case ocispec.MediaTypeImageManifest, mediaTypeDockerManifest:
	case ocispec.MediaTypeImageIndex, "application/vnd.docker.distribution.manifest.list.v2+json":
		return refuse("is an image index (%s), not a module artifact; push the module as a single artifact", desc.MediaType)
	default:
		return refuse("the manifest has media type %q; want %s", desc.MediaType, ocispec.MediaTypeImageManifest)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return refuse("the manifest is not valid JSON: %v", err)
	}
	if m.SchemaVersion != 2 {
		return refuse("the manifest has schemaVersion %d; want 2", m.SchemaVersion)
	}
	if m.MediaType != "" && m.MediaType != desc.MediaType {
		return refuse("the manifest says media type %q but was served as %q", m.MediaType, desc.MediaType)
	}
	if len(m.Layers) != 1 {
		types := make([]string, len(m.Layers))
		for i, l := range m.Layers {
			types[i] = l.MediaType
		}
		return refuse("the artifact has %d layers [%s]; a module artifact has exactly one, a gzip'd tar archive (%s)", len(m.Layers), strings.Join(types, ", "), moduleLayerTypes)
	}
	layer := m.Layers[0]
	if !isModuleLayer(layer.MediaType) {
		return refuse("the layer has media type %q; want a gzip'd tar archive, one of %s", layer.MediaType, moduleLayerTypes)
	}
	if err := layer.Digest.Validate(); err != nil || layer.Digest.Algorithm() != "sha256" {
		return refuse("the layer's digest %q is not sha256:<64 hex digits>", layer.Digest)
	}
	if layer.Size < 0 {
		return refuse("the layer declares a negative size %d", layer.Size)
	}
	if layer.Size > limit {
		return refuse("the layer is %d bytes, larger than the %d bytes the agent accepts", layer.Size, limit)
	}
	// Only what identifies the blob is kept: URLs and annotations of an
	// untrusted manifest play no part in the fetch.
	return ocispec.Descriptor{MediaType: layer.MediaType, Digest: layer.Digest, Size: layer.Size}, nil
}

// registryCredential resolves the spec's username and password.
func (e *Executor) registryCredential(ctx context.Context, t executor.Task, s *taskspec.Terraform) (auth.Credential, error) {
	user := s.Username
	if strings.HasPrefix(user, vault.Scheme) {
		v, err := e.resolveRegistrySecret(ctx, t, "username", user)
		if err != nil {
			return auth.Credential{}, err
		}
		user = v
	}
	if !strings.HasPrefix(s.Password, vault.Scheme) {
		// Not quoted: a password pasted here by mistake must not reach an
		// error message.
		return auth.Credential{}, executor.Terminal(fmt.Errorf("%w: password: must be a vault reference (vault://<provider>/<path>/<key>), never the password itself", ErrModule))
	}
	pass, err := e.resolveRegistrySecret(ctx, t, "password", s.Password)
	if err != nil {
		return auth.Credential{}, err
	}
	return auth.Credential{Username: user, Password: pass}, nil
}

// resolveRegistrySecret resolves the vault reference raw of field and
// registers the value with the task's redactor before anything can report
// it.
func (e *Executor) resolveRegistrySecret(ctx context.Context, t executor.Task, field, raw string) (string, error) {
	ref, err := vault.ParseRef(raw)
	if err != nil {
		return "", executor.Terminal(fmt.Errorf("%w: %s: %w", ErrModule, field, err))
	}
	v, err := e.opts.Vault.Resolve(ctx, ref)
	if err != nil {
		err = fmt.Errorf("%w: %s (%s): %w", ErrModule, field, ref, err)
		if vault.IsPermanent(err) {
			return "", executor.Terminal(err)
		}
		return "", err
	}
	if t.Redact != nil {
		t.Redact.AddSecret(v)
	}
	return v, nil
}

// registryError explains an error from the registry about what. A refusal
// is reported by its status alone: the registry's message may quote the
// request.
func registryError(ctx context.Context, source, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %s: %s: %w (%w)", ErrModule, source, what, context.Cause(ctx), err)
	}
	if errors.Is(err, auth.ErrBasicCredentialNotFound) {
		return executor.Terminal(fmt.Errorf("%w: %s: %s: the registry asks for credentials (401) and the spec gives none; set username and password", ErrModule, source, what))
	}
	if errors.Is(err, errdef.ErrSizeExceedsLimit) {
		return executor.Terminal(fmt.Errorf("%w: %s: %s: larger than the %d bytes the agent accepts", ErrModule, source, what, maxManifestBytes))
	}
	if resp, ok := errors.AsType[*errcode.ErrorResponse](err); ok {
		return registryStatusError(source, what, resp.StatusCode)
	}
	if errors.Is(err, errdef.ErrNotFound) {
		return registryStatusError(source, what, http.StatusNotFound)
	}
	return fmt.Errorf("%w: %s: %s: %w", ErrModule, source, what, err)
}

// registryStatusError describes a registry's status: client errors are
// terminal, except timeouts and rate limits.
func registryStatusError(source, what string, status int) error {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		return executor.Terminal(fmt.Errorf("%w: %s: %s: the registry refused the credentials (%d); check username and password", ErrModule, source, what, status))
	case http.StatusNotFound:
		return executor.Terminal(fmt.Errorf("%w: %s: %s not found (404); check the repository and the tag or digest", ErrModule, source, what))
	}
	err := fmt.Errorf("%w: %s: %s: unexpected status %d %s", ErrModule, source, what, status, http.StatusText(status))
	if status >= 400 && status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests {
		return executor.Terminal(err)
	}
	return err
}

// registryLayerError explains a failure to read the layer: content that
// does not match its descriptor is terminal, a broken transfer may be
// retried.
func registryLayerError(ctx context.Context, source string, layer ocispec.Descriptor, err error) error {
	what := "layer " + layer.Digest.String()
	switch {
	case errors.Is(err, content.ErrMismatchedDigest):
		return executor.Terminal(fmt.Errorf("%w: %s: %s: the content does not match its digest", ErrModule, source, what))
	case errors.Is(err, content.ErrTrailingData):
		return executor.Terminal(fmt.Errorf("%w: %s: %s: the content is longer than the %d bytes the manifest declares", ErrModule, source, what, layer.Size))
	}
	return registryError(ctx, source, what, err)
}
