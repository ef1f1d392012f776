package terraform_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/outposthq/outpost/internal/archive"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/terraform"
	"github.com/outposthq/outpost/internal/taskspec"
)

// ociRegistry is an in-process OCI registry (go-containerregistry's) that
// records the blobs fetched from it, may require basic auth, and may serve
// other bytes than a blob's in its place.
type ociRegistry struct {
	srv        *httptest.Server
	host       string
	user, pass string

	mu       sync.Mutex
	requests int
	blobGets []string
	tamper   map[string][]byte
	status   int // when set, the answer to every request
}

// newOCIRegistry starts a registry over TLS, or plain HTTP when plain is
// set; with user set it demands those basic credentials.
func newOCIRegistry(t *testing.T, plain bool, user, pass string) *ociRegistry {
	t.Helper()
	r := &ociRegistry{user: user, pass: pass, tamper: map[string][]byte{}}
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	serve := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests++
		status := r.status
		r.mu.Unlock()
		if status != 0 {
			http.Error(w, http.StatusText(status), status)
			return
		}
		if r.user != "" {
			if u, p, ok := req.BasicAuth(); !ok || u != r.user || p != r.pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
		}
		if _, dgst, ok := strings.Cut(req.URL.Path, "/blobs/"); ok && req.Method == http.MethodGet {
			r.mu.Lock()
			r.blobGets = append(r.blobGets, dgst)
			body, tampered := r.tamper[dgst]
			r.mu.Unlock()
			if tampered {
				w.Header().Set("Docker-Content-Digest", dgst)
				w.Header().Set("Content-Type", "application/octet-stream")
				_, _ = w.Write(body)
				return
			}
		}
		h.ServeHTTP(w, req)
	})
	if plain {
		r.srv = httptest.NewServer(serve)
	} else {
		r.srv = httptest.NewTLSServer(serve)
	}
	t.Cleanup(r.srv.Close)
	r.host = strings.TrimPrefix(strings.TrimPrefix(r.srv.URL, "https://"), "http://")
	return r
}

// blob is a layer to push.
type blob struct {
	mediaType string
	data      []byte
}

// push uploads an artifact with layers to repository:tag and returns its
// manifest's descriptor.
func (r *ociRegistry) push(t *testing.T, repository, tag string, layers ...blob) ocispec.Descriptor {
	t.Helper()
	ctx := t.Context()
	repo := r.repository(t, repository)
	if _, err := oras.PushBytes(ctx, repo, ocispec.MediaTypeEmptyJSON, ocispec.DescriptorEmptyJSON.Data); err != nil {
		t.Fatal(err)
	}
	descs := make([]ocispec.Descriptor, 0, len(layers))
	for _, l := range layers {
		d, err := oras.PushBytes(ctx, repo, l.mediaType, l.data)
		if err != nil {
			t.Fatal(err)
		}
		descs = append(descs, d)
	}
	m := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: "application/vnd.outpost.terraform.module.v1",
		Config:       ocispec.DescriptorEmptyJSON,
		Layers:       descs,
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return r.pushManifest(t, repository, tag, ocispec.MediaTypeImageManifest, raw)
}

// pushManifest uploads raw as repository:tag's manifest of mediaType, with
// a plain PUT: oras would refuse to push a malformed manifest.
func (r *ociRegistry) pushManifest(t *testing.T, repository, tag, mediaType string, raw []byte) ocispec.Descriptor {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, r.srv.URL+"/v2/"+repository+"/manifests/"+tag, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mediaType)
	if r.user != "" {
		req.SetBasicAuth(r.user, r.pass)
	}
	resp, err := r.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusCreated {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		t.Fatalf("PUT manifest %s:%s: %s %s", repository, tag, resp.Status, body)
	}
	r.reset()
	return content.NewDescriptorFromBytes(mediaType, raw)
}

// repository returns a client of repository with r's credentials.
func (r *ociRegistry) repository(t *testing.T, repository string) *remote.Repository {
	t.Helper()
	repo, err := remote.NewRepository(r.host + "/" + repository)
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = strings.HasPrefix(r.srv.URL, "http://")
	repo.Client = &auth.Client{Client: r.srv.Client(), Credential: auth.StaticCredential(r.host, auth.Credential{Username: r.user, Password: r.pass})}
	return repo
}

// reset forgets the requests seen so far.
func (r *ociRegistry) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests, r.blobGets = 0, nil
}

func (r *ociRegistry) fetched(dgst string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.blobGets, dgst)
}

func (r *ociRegistry) seen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// ociExecutor returns an executor pulling through reg's client. tofu is
// the binary to run; refusals never reach it.
func ociExecutor(t *testing.T, reg *ociRegistry, tofu string, vault fakeVault, maxModule int64) *terraform.Executor {
	t.Helper()
	ex, err := terraform.New(terraform.Options{
		TofuPath:       tofu,
		LocalStateDir:  t.TempDir(),
		WorkRoot:       t.TempDir(),
		Vault:          vault,
		HTTPClient:     reg.srv.Client(),
		MaxModuleBytes: maxModule,
	})
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

// ociDigest returns the digest of b as a registry names it.
func ociDigest(b []byte) string {
	return content.NewDescriptorFromBytes("", b).Digest.String()
}

func executeOCI(t *testing.T, ex *terraform.Executor, spec map[string]any, red *redactor) (*taskspec.TerraformResult, error) {
	t.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	task := executor.Task{ID: "t1", Kind: "terraform", Spec: raw, Attempt: 1}
	if red != nil {
		task.Redact = red
	}
	out, err := ex.Execute(t.Context(), task)
	if err != nil {
		return nil, err
	}
	var res taskspec.TerraformResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("result %s: %v", out, err)
	}
	return &res, nil
}

func TestOCIModulePulledAndApplied(t *testing.T) {
	tofu := tofuPath(t)
	mod := tarGz(t, entry{name: "main.tf", body: module})
	for _, plain := range []bool{false, true} {
		reg := newOCIRegistry(t, plain, "", "")
		desc := reg.push(t, "modules/net", "v1", blob{ocispec.MediaTypeImageLayerGzip, mod})
		layer := ociDigest(mod)
		ex := ociExecutor(t, reg, tofu, fakeVault{}, 0)
		refs := map[string]string{
			"by tag":    "oci://" + reg.host + "/modules/net:v1",
			"by digest": "oci://" + reg.host + "/modules/net@" + desc.Digest.String(),
		}
		for how, url := range refs {
			name := "a module pulled " + how + " over TLS is applied"
			if plain {
				name = "a module pulled " + how + " over plain HTTP is applied"
			}
			t.Run(name, func(t *testing.T) {
				reg.reset()
				ws := strings.ReplaceAll(how, " ", "-")
				res, err := executeOCI(t, ex, map[string]any{"workspace": ws, "url": url, "plain_http": plain, "variables": map[string]any{"v": "from-" + ws}}, nil)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := string(res.Outputs["v"]), `"from-`+ws+`"`; got != want {
					t.Fatalf("output v = %s, want %s", got, want)
				}
				if !reg.fetched(layer) {
					t.Fatalf("the layer %s was not fetched from the registry", layer)
				}
			})
		}
	}
}

func TestOCIModuleCredentials(t *testing.T) {
	tofu := tofuPath(t)
	const password = "reg1stry-Pa55-Xk7"
	reg := newOCIRegistry(t, false, "robot", password)
	reg.push(t, "modules/net", "v1", blob{ocispec.MediaTypeImageLayerGzip, tarGz(t, entry{name: "main.tf", body: module})})
	url := "oci://" + reg.host + "/modules/net:v1"

	t.Run("credentials from vault references are accepted", func(t *testing.T) {
		ex := ociExecutor(t, reg, tofu, fakeVault{"vault://local/registry/username": "robot", "vault://local/registry/password": password}, 0)
		red := &redactor{}
		res, err := executeOCI(t, ex, map[string]any{"workspace": "auth", "url": url, "username": "vault://local/registry/username", "password": "vault://local/registry/password", "variables": map[string]any{"v": "authed"}}, red)
		if err != nil {
			t.Fatal(err)
		}
		if string(res.Outputs["v"]) != `"authed"` {
			t.Fatalf("output v = %s", res.Outputs["v"])
		}
		if !slices.Contains(red.secrets, password) {
			t.Fatalf("the registry password was not registered with the redactor: %q", red.secrets)
		}
	})
	t.Run("a wrong password fails terminally without appearing in the error", func(t *testing.T) {
		const wrong = "wr0ng-Pa55-Qz3"
		ex := ociExecutor(t, reg, "/nonexistent/tofu", fakeVault{"vault://local/registry/password": wrong}, 0)
		red := &redactor{}
		_, err := executeOCI(t, ex, map[string]any{"workspace": "auth", "url": url, "username": "robot", "password": "vault://local/registry/password", "variables": map[string]any{"v": "x"}}, red)
		if !errors.Is(err, terraform.ErrModule) || !executor.IsTerminal(err) || !strings.Contains(err.Error(), "refused the credentials (401)") {
			t.Fatalf("error = %v, want a terminal ErrModule saying the registry refused the credentials", err)
		}
		if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), password) {
			t.Fatalf("the error holds a password: %v", err)
		}
		if !slices.Contains(red.secrets, wrong) {
			t.Fatalf("the resolved password was not registered with the redactor: %q", red.secrets)
		}
	})
	t.Run("a registry asking for credentials the spec lacks fails terminally", func(t *testing.T) {
		ex := ociExecutor(t, reg, "/nonexistent/tofu", fakeVault{}, 0)
		_, err := executeOCI(t, ex, map[string]any{"workspace": "auth", "url": url, "variables": map[string]any{"v": "x"}}, nil)
		if !errors.Is(err, terraform.ErrModule) || !executor.IsTerminal(err) || !strings.Contains(err.Error(), "asks for credentials") {
			t.Fatalf("error = %v, want a terminal ErrModule saying credentials are needed", err)
		}
	})
	t.Run("a password missing from the vault fails terminally", func(t *testing.T) {
		reg.reset()
		ex := ociExecutor(t, reg, "/nonexistent/tofu", fakeVault{}, 0)
		_, err := executeOCI(t, ex, map[string]any{"workspace": "auth", "url": url, "username": "robot", "password": "vault://local/registry/password", "variables": map[string]any{"v": "x"}}, nil)
		if !errors.Is(err, terraform.ErrModule) || !executor.IsTerminal(err) || !strings.Contains(err.Error(), "password (vault://local/registry/password)") {
			t.Fatalf("error = %v, want a terminal ErrModule naming the password's reference", err)
		}
		if reg.seen() != 0 {
			t.Fatalf("the registry was contacted %d times before the credentials were resolved", reg.seen())
		}
	})
}

func TestOCIModuleRefusals(t *testing.T) {
	reg := newOCIRegistry(t, false, "", "")
	mod := tarGz(t, entry{name: "main.tf", body: module})
	modDigest := ociDigest(mod)
	reg.push(t, "modules/ok", "v1", blob{ocispec.MediaTypeImageLayerGzip, mod})
	reg.push(t, "modules/two", "v1", blob{ocispec.MediaTypeImageLayerGzip, mod}, blob{"application/tar+gzip", tarGz(t, entry{name: "extra.tf", body: "# extra"})})
	reg.push(t, "modules/zip", "v1", blob{"archive/zip", []byte("PK\x03\x04 not really")})
	reg.push(t, "modules/evil", "v1", blob{"application/tar+gzip", tarGz(t, entry{name: "main.tf", body: module}, entry{name: "../evil.tf", body: "x"})})
	tampered := tarGz(t, entry{name: "main.tf", body: module + "\n# tampered"})
	reg.push(t, "modules/tampered", "v1", blob{ocispec.MediaTypeImageLayerGzip, tampered})
	bad := bytes.Clone(tampered)
	bad[len(bad)/2] ^= 0xff
	tamperedDigest := ociDigest(tampered)
	reg.mu.Lock()
	reg.tamper[tamperedDigest] = bad
	reg.mu.Unlock()
	inner := reg.push(t, "modules/index", "inner", blob{ocispec.MediaTypeImageLayerGzip, mod})
	index, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{inner}})
	if err != nil {
		t.Fatal(err)
	}
	reg.pushManifest(t, "modules/index", "v1", ocispec.MediaTypeImageIndex, index)
	reg.pushManifest(t, "modules/garbled", "v1", ocispec.MediaTypeImageManifest, []byte("not a manifest"))
	huge, err := json.Marshal(ocispec.Manifest{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   ocispec.MediaTypeImageManifest,
		Config:      ocispec.DescriptorEmptyJSON,
		Layers:      []ocispec.Descriptor{content.NewDescriptorFromBytes(ocispec.MediaTypeImageLayerGzip, mod)},
		Annotations: map[string]string{"padding": strings.Repeat("x", 4<<20)},
	})
	if err != nil {
		t.Fatal(err)
	}
	reg.pushManifest(t, "modules/huge", "v1", ocispec.MediaTypeImageManifest, huge)

	ref := func(repo string) string { return "oci://" + reg.host + "/modules/" + repo }
	tests := []struct {
		name      string
		url       string
		maxModule int64
		want      error
		reason    string
	}{
		{"a two-layer artifact is refused naming its media types", ref("two:v1"), 0, terraform.ErrModule, "has 2 layers [" + ocispec.MediaTypeImageLayerGzip + ", application/tar+gzip]"},
		{"a layer that is not a gzip'd tar is refused", ref("zip:v1"), 0, terraform.ErrModule, `media type "archive/zip"`},
		{"an image index is refused", ref("index:v1"), 0, terraform.ErrModule, "is an image index"},
		{"a manifest that is not JSON is refused", ref("garbled:v1"), 0, terraform.ErrModule, "the manifest is not valid JSON"},
		{"a manifest over 4 MiB is refused", ref("huge:v1"), 0, terraform.ErrModule, "manifest: larger than the 4194304 bytes"},
		{"an unknown tag is refused", ref("ok:v2"), 0, terraform.ErrModule, "not found (404)"},
		{"an unknown repository is refused", ref("nothing:v1"), 0, terraform.ErrModule, "not found (404)"},
		{"a layer over the size limit is refused", ref("ok:v1"), int64(len(mod)) - 1, terraform.ErrModule, "larger than the"},
		{"a layer not matching its digest is refused", ref("tampered:v1"), 0, terraform.ErrModule, "does not match its digest"},
		{"an archive with path traversal is refused", ref("evil:v1"), 0, archive.ErrUnsafePath, "evil.tf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg.reset()
			ex := ociExecutor(t, reg, "/nonexistent/tofu", fakeVault{}, tt.maxModule)
			_, err := executeOCI(t, ex, map[string]any{"workspace": "refused", "url": tt.url, "variables": map[string]any{"v": "x"}}, nil)
			if !errors.Is(err, tt.want) || !errors.Is(err, terraform.ErrModule) || !executor.IsTerminal(err) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error = %v, want a terminal ErrModule wrapping %v and saying %q", err, tt.want, tt.reason)
			}
		})
	}
	t.Run("a registry failing with 503 may be retried", func(t *testing.T) {
		failing := newOCIRegistry(t, false, "", "")
		failing.push(t, "modules/ok", "v1", blob{ocispec.MediaTypeImageLayerGzip, mod})
		failing.mu.Lock()
		failing.status = http.StatusServiceUnavailable
		failing.mu.Unlock()
		ex := ociExecutor(t, failing, "/nonexistent/tofu", fakeVault{}, 0)
		_, err := executeOCI(t, ex, map[string]any{"workspace": "retry", "url": "oci://" + failing.host + "/modules/ok:v1", "variables": map[string]any{"v": "x"}}, nil)
		if !errors.Is(err, terraform.ErrModule) || executor.IsTerminal(err) || !strings.Contains(err.Error(), "unexpected status 503") {
			t.Fatalf("error = %v, want a retryable ErrModule saying 503", err)
		}
	})
	t.Run("an unreachable registry may be retried", func(t *testing.T) {
		gone := newOCIRegistry(t, false, "", "")
		gone.srv.Close()
		ex := ociExecutor(t, gone, "/nonexistent/tofu", fakeVault{}, 0)
		_, err := executeOCI(t, ex, map[string]any{"workspace": "retry", "url": "oci://" + gone.host + "/modules/ok:v1", "variables": map[string]any{"v": "x"}}, nil)
		if !errors.Is(err, terraform.ErrModule) || executor.IsTerminal(err) {
			t.Fatalf("error = %v, want a retryable ErrModule", err)
		}
	})
	t.Run("a layer over the size limit is not downloaded", func(t *testing.T) {
		reg.reset()
		ex := ociExecutor(t, reg, "/nonexistent/tofu", fakeVault{}, int64(len(mod))-1)
		if _, err := executeOCI(t, ex, map[string]any{"workspace": "refused", "url": ref("ok:v1"), "variables": map[string]any{"v": "x"}}, nil); err == nil {
			t.Fatal("the pull succeeded")
		}
		if reg.seen() == 0 {
			t.Fatal("the registry was not asked for the manifest")
		}
		if reg.fetched(modDigest) {
			t.Fatal("the layer was downloaded although its declared size is over the limit")
		}
	})
	t.Run("a plain-HTTP registry is not reached without plain_http", func(t *testing.T) {
		plain := newOCIRegistry(t, true, "", "")
		plain.push(t, "modules/ok", "v1", blob{ocispec.MediaTypeImageLayerGzip, mod})
		ex := ociExecutor(t, plain, "/nonexistent/tofu", fakeVault{}, 0)
		_, err := executeOCI(t, ex, map[string]any{"workspace": "plain", "url": "oci://" + plain.host + "/modules/ok:v1", "variables": map[string]any{"v": "x"}}, nil)
		if !errors.Is(err, terraform.ErrModule) {
			t.Fatalf("error = %v, want ErrModule", err)
		}
		if plain.seen() != 0 {
			t.Fatalf("the plain-HTTP registry served %d requests although the spec did not set plain_http", plain.seen())
		}
	})
}
