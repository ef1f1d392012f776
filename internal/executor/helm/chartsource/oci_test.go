package chartsource

import (
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"helm.sh/helm/v4/pkg/registry"
)

// testRegistry is an in-process OCI registry behind basic auth.
type testRegistry struct {
	srv *httptest.Server
	// handler is the registry without the auth in front.
	handler http.Handler
	// redirectBlobs sends blob downloads to this origin when set.
	redirectBlobs atomic.Pointer[string]
	// stallBlobs holds blob downloads until the client goes away.
	stallBlobs atomic.Bool
	plain      bool
}

func newTestRegistry(t *testing.T, plain bool) *testRegistry {
	t.Helper()
	r := &testRegistry{handler: ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0))), plain: plain}
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if u, p, ok := req.BasicAuth(); !ok || u != testUser || p != testPassword {
			w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		if r.stallBlobs.Load() && strings.Contains(req.URL.Path, "/blobs/") {
			<-req.Context().Done()
			return
		}
		if to := r.redirectBlobs.Load(); to != nil && req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") {
			http.Redirect(w, req, *to+req.URL.Path, http.StatusTemporaryRedirect)
			return
		}
		r.handler.ServeHTTP(w, req)
	})
	if plain {
		r.srv = httptest.NewServer(h)
	} else {
		r.srv = httptest.NewTLSServer(h)
	}
	t.Cleanup(r.srv.Close)
	return r
}

// host is the registry's host:port.
func (r *testRegistry) host() string { return r.srv.Listener.Addr().String() }

// push uploads a chart archive with Helm's own registry client, as
// `helm push` would.
func (r *testRegistry) push(t *testing.T, repoPath string, archive []byte, tag string) {
	t.Helper()
	opts := []registry.ClientOption{
		registry.ClientOptHTTPClient(r.srv.Client()),
		registry.ClientOptBasicAuth(testUser, testPassword),
		registry.ClientOptCredentialsFile(os.DevNull),
	}
	if r.plain {
		opts = append(opts, registry.ClientOptPlainHTTP())
	}
	c, err := registry.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Push(archive, r.host()+"/"+repoPath+":"+tag); err != nil {
		t.Fatalf("push %s:%s: %v", repoPath, tag, err)
	}
}

func (r *testRegistry) request(repoPath, version string) Request {
	req := Request{Repository: "oci://" + r.host() + "/" + repoPath, Version: version, Username: testUser, Password: testPassword, PlainHTTP: r.plain}
	if !r.plain {
		req.CAPEM = caPEM(r.srv)
	}
	return req
}

// seeded returns a registry holding charts/web at several versions and the
// archives pushed, by version.
func seeded(t *testing.T, plain bool) (*testRegistry, map[string][]byte) {
	t.Helper()
	r := newTestRegistry(t, plain)
	archives := map[string][]byte{}
	for _, v := range []string{"1.0.0", "1.0.5", "1.2.0", "1.3.0+build.5", "2.0.0-rc.1"} {
		archives[v] = chartArchive(t, "web", v, 0)
		r.push(t, "charts/web", archives[v], v)
	}
	return r, archives
}

func TestFetchOCI(t *testing.T) {
	isolateHome(t)
	for _, transport := range []struct {
		name  string
		plain bool
	}{{"over TLS with the request's CA", false}, {"over plain http", true}} {
		t.Run(transport.name, func(t *testing.T) {
			r, archives := seeded(t, transport.plain)
			f := newFetcher(t, Options{})
			for _, tc := range []struct {
				name, version, want string
			}{
				{"an exact version is pulled by its tag", "1.0.5", "1.0.5"},
				{"a version with build metadata is pulled by its underscore tag", "1.3.0+build.5", "1.3.0+build.5"},
				{"a constraint is resolved against the tags", "~1.0", "1.0.5"},
				{"an empty version picks the latest stable tag", "", "1.3.0+build.5"},
				{"a prerelease named exactly is pulled", "2.0.0-rc.1", "2.0.0-rc.1"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					c, err := f.Fetch(t.Context(), r.request("charts/web", tc.version))
					if err != nil {
						t.Fatal(err)
					}
					if c.Name != "web" || c.Version != tc.want {
						t.Fatalf("got %s %s, want web %s", c.Name, c.Version, tc.want)
					}
					if string(c.Archive) != string(archives[tc.want]) {
						t.Fatal("the archive differs from the one pushed")
					}
					if c.Digest != digestOf(archives[tc.want]) {
						t.Fatalf("digest %s", c.Digest)
					}
					if want := "oci://" + r.host() + "/charts/web"; c.Source != want {
						t.Fatalf("source %q, want %q", c.Source, want)
					}
				})
			}
		})
	}
}

func TestFetchOCIFailures(t *testing.T) {
	isolateHome(t)
	r, _ := seeded(t, false)
	r.push(t, "charts/big", chartArchive(t, "big", "1.0.0", 8192), "1.0.0")
	for _, tc := range []struct {
		name     string
		req      func(req *Request)
		opts     Options
		sentinel error
		says     []string
	}{
		{
			name:     "a wrong password fails as authentication without showing the password",
			req:      func(req *Request) { req.Password = "wrong-password" },
			sentinel: ErrAuth,
			says:     []string{"repository oci://127.0.0.1:", "/charts/web: authentication failed (401)"},
		},
		{
			name:     "a wrong password fails as authentication when listing tags too",
			req:      func(req *Request) { req.Password, req.Version = "wrong-password", "^1" },
			sentinel: ErrAuth,
			says:     []string{"authentication failed (401)"},
		},
		{
			name:     "no credentials for a registry that needs them fails as authentication",
			req:      func(req *Request) { req.Username, req.Password = "", "" },
			sentinel: ErrAuth,
			says:     []string{"authentication failed (401)", "none were given"},
		},
		{
			name:     "a version that is not published lists what is",
			req:      func(req *Request) { req.Version = "1.0.1" },
			sentinel: ErrNoMatchingVersion,
			says:     []string{`no version matches constraint "1.0.1" (available: 2.0.0-rc.1, 1.3.0+build.5, 1.2.0, 1.0.5, 1.0.0)`},
		},
		{
			name:     "a constraint nothing satisfies lists what is published",
			req:      func(req *Request) { req.Version = ">=3" },
			sentinel: ErrNoMatchingVersion,
			says:     []string{`no version matches constraint ">=3"`},
		},
		{
			name:     "a chart the registry does not hold is not found",
			req:      func(req *Request) { req.Repository += "-missing" },
			sentinel: ErrNotFound,
			says:     []string{"/charts/web-missing:", "not found (404)"},
		},
		{
			name:     "a chart layer over the cap is refused before it is downloaded",
			req:      func(req *Request) { req.Repository = strings.Replace(req.Repository, "/charts/web", "/charts/big", 1) },
			opts:     Options{MaxChartBytes: 4096},
			sentinel: ErrTooLarge,
			says:     []string{"version 1.0.0:", "larger than the limit of 4096 bytes"},
		},
		{
			name:     "a tag in the reference is refused, pointing at Version",
			req:      func(req *Request) { req.Repository += ":1.0.0" },
			sentinel: ErrInvalidRequest,
			says:     []string{"give the version in Version"},
		},
		{
			name:     "a chart name that contradicts the reference is refused",
			req:      func(req *Request) { req.Chart = "db" },
			sentinel: ErrInvalidRequest,
			says:     []string{`chart "db" differs from the reference's last segment "web"`},
		},
		{
			name: "a reference with credentials in it is refused, pointing at vault references",
			req: func(req *Request) {
				req.Repository = strings.Replace(req.Repository, "oci://", "oci://"+testUser+":"+testPassword+"@", 1)
			},
			sentinel: ErrInvalidRequest,
			says:     []string{"carries credentials in its URL", "vault references"},
		},
		{
			name:     "a CA bundle without a certificate is refused",
			req:      func(req *Request) { req.CAPEM = []byte("not a certificate") },
			sentinel: ErrInvalidRequest,
			says:     []string{"the CA bundle holds no PEM certificate"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := r.request("charts/web", "1.0.0")
			tc.req(&req)
			_, err := newFetcher(t, tc.opts).Fetch(t.Context(), req)
			if !errors.Is(err, tc.sentinel) {
				t.Fatalf("error %v, want %v", err, tc.sentinel)
			}
			msg := err.Error()
			for _, s := range tc.says {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not say %q", msg, s)
				}
			}
			if strings.Contains(msg, testPassword) {
				t.Errorf("error %q shows the password", msg)
			}
			if !IsPermanent(err) {
				t.Errorf("error %v is not permanent", err)
			}
		})
	}
	t.Run("a registry whose certificate the request does not trust is refused", func(t *testing.T) {
		req := r.request("charts/web", "1.0.0")
		req.CAPEM = nil
		_, err := newFetcher(t, Options{}).Fetch(t.Context(), req)
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("error %v, want a certificate error", err)
		}
	})
}

func TestFetchOCISendsCredentialsOnlyToTheRegistry(t *testing.T) {
	isolateHome(t)
	r, archives := seeded(t, false)
	// A blob store on another origin, as registries hand downloads to
	// object storage: it serves the registry's blobs without auth and
	// records whether credentials arrived.
	var requests, withAuth atomic.Int32
	store := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		requests.Add(1)
		if req.Header.Get("Authorization") != "" {
			withAuth.Add(1)
		}
		r.handler.ServeHTTP(w, req)
	}))
	defer store.Close()
	r.redirectBlobs.Store(&store.URL)

	c, err := newFetcher(t, Options{}).Fetch(t.Context(), r.request("charts/web", "1.2.0"))
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Archive) != string(archives["1.2.0"]) {
		t.Fatal("the archive differs from the one pushed")
	}
	if requests.Load() == 0 {
		t.Fatal("no blob was downloaded from the other origin")
	}
	if n := withAuth.Load(); n != 0 {
		t.Fatalf("the other origin got credentials %d times", n)
	}
}
