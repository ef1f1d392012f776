package chartsource

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	repo "helm.sh/helm/v4/pkg/repo/v1"
	"sigs.k8s.io/yaml"
)

// testRepo is an HTTPS chart repository behind basic auth.
type testRepo struct {
	srv   *httptest.Server
	mu    sync.Mutex
	index *repo.IndexFile
	// files maps a path to the body served there.
	files map[string][]byte
	// redirects maps a path to a Location.
	redirects map[string]string
	// chunked serves bodies without a Content-Length.
	chunked bool
}

func newTestRepo(t *testing.T, charts ...[2]string) *testRepo {
	t.Helper()
	r := &testRepo{index: repo.NewIndexFile(), files: map[string][]byte{}, redirects: map[string]string{}}
	for _, c := range charts {
		r.add(t, c[0], c[1], chartArchive(t, c[0], c[1], 0))
	}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *testRepo) add(t *testing.T, name, version string, archive []byte) {
	t.Helper()
	file := fmt.Sprintf("%s-%s.tgz", name, version)
	md := &chart.Metadata{APIVersion: chart.APIVersionV2, Name: name, Version: version}
	if err := r.index.MustAdd(md, file, "charts", strings.TrimPrefix(digestOf(archive), "sha256:")); err != nil {
		t.Fatal(err)
	}
	r.files["/charts/"+file] = archive
}

// entry returns the index entry for name and version, to change it.
func (r *testRepo) entry(t *testing.T, name, version string) *repo.ChartVersion {
	t.Helper()
	for _, e := range r.index.Entries[name] {
		if e.Version == version {
			return e
		}
	}
	t.Fatalf("no entry %s %s", name, version)
	return nil
}

func (r *testRepo) serve(w http.ResponseWriter, req *http.Request) {
	if u, p, ok := req.BasicAuth(); !ok || u != testUser || p != testPassword {
		w.Header().Set("WWW-Authenticate", `Basic realm="charts"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if loc, ok := r.redirects[req.URL.Path]; ok {
		http.Redirect(w, req, loc, http.StatusFound)
		return
	}
	body, ok := r.files[req.URL.Path]
	if req.URL.Path == "/index.yaml" && !ok {
		var err error
		if body, err = yaml.Marshal(r.index); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		ok = true
	}
	if !ok {
		http.NotFound(w, req)
		return
	}
	if r.chunked {
		// Two writes with a flush between: no Content-Length is sent.
		half := len(body) / 2
		_, _ = w.Write(body[:half])
		w.(http.Flusher).Flush()
		body = body[half:]
	}
	_, _ = w.Write(body)
}

func (r *testRepo) request(chartName, version string) Request {
	return Request{Repository: r.srv.URL, Chart: chartName, Version: version, Username: testUser, Password: testPassword, CAPEM: caPEM(r.srv)}
}

func TestFetchHTTPPicksVersion(t *testing.T) {
	isolateHome(t)
	r := newTestRepo(t,
		[2]string{"web", "1.0.0"}, [2]string{"web", "1.0.5"}, [2]string{"web", "1.2.0"},
		[2]string{"web", "2.0.0-rc.1"}, [2]string{"db", "3.1.0"})
	f := newFetcher(t, Options{})
	for _, tc := range []struct {
		name, version, want string
	}{
		{"an empty version picks the latest stable version, skipping prereleases", "", "1.2.0"},
		{"a caret constraint picks the highest compatible version", "^1.0", "1.2.0"},
		{"a tilde constraint stays within the minor version", "~1.0.0", "1.0.5"},
		{"a range constraint picks the highest version inside it", ">=1 <1.1", "1.0.5"},
		{"an exact version is fetched as it is", "1.0.0", "1.0.0"},
		{"a prerelease named exactly is fetched", "2.0.0-rc.1", "2.0.0-rc.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := f.Fetch(t.Context(), r.request("web", tc.version))
			if err != nil {
				t.Fatal(err)
			}
			if c.Name != "web" || c.Version != tc.want {
				t.Fatalf("got %s %s, want web %s", c.Name, c.Version, tc.want)
			}
			if want := r.files["/charts/web-"+tc.want+".tgz"]; string(c.Archive) != string(want) {
				t.Fatal("the archive differs from the one served")
			}
			if c.Digest != digestOf(c.Archive) || !strings.HasPrefix(c.Digest, "sha256:") {
				t.Fatalf("digest %q", c.Digest)
			}
			if c.Source != r.srv.URL {
				t.Fatalf("source %q, want %q", c.Source, r.srv.URL)
			}
			loaded, err := loader.LoadArchive(strings.NewReader(string(c.Archive)))
			if err != nil {
				t.Fatalf("the archive does not load as a chart: %v", err)
			}
			if loaded.Metadata.Version != tc.want {
				t.Fatalf("loaded chart version %s", loaded.Metadata.Version)
			}
		})
	}
}

func TestFetchHTTPRepositoryUnderAPath(t *testing.T) {
	isolateHome(t)
	r := newTestRepo(t)
	archive := chartArchive(t, "web", "1.0.0", 0)
	md := &chart.Metadata{APIVersion: chart.APIVersionV2, Name: "web", Version: "1.0.0"}
	if err := r.index.MustAdd(md, "web-1.0.0.tgz", "", strings.TrimPrefix(digestOf(archive), "sha256:")); err != nil {
		t.Fatal(err)
	}
	r.files["/stable/web-1.0.0.tgz"] = archive
	idx, err := yaml.Marshal(r.index)
	if err != nil {
		t.Fatal(err)
	}
	r.files["/stable/index.yaml"] = idx
	req := r.request("web", "")
	req.Repository = r.srv.URL + "/stable/"
	c, err := newFetcher(t, Options{}).Fetch(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != "1.0.0" || string(c.Archive) != string(archive) {
		t.Fatalf("got %s", c.Version)
	}
}

func TestFetchHTTPFailures(t *testing.T) {
	isolateHome(t)
	for _, tc := range []struct {
		name     string
		setup    func(t *testing.T, r *testRepo, req *Request, opts *Options)
		sentinel error
		says     []string
	}{
		{
			name:     "a chart the index does not list is not found",
			setup:    func(t *testing.T, r *testRepo, req *Request, opts *Options) { req.Chart = "nope" },
			sentinel: ErrNotFound,
			says:     []string{`chart "nope" not found`},
		},
		{
			name:     "a constraint nothing satisfies lists up to five available versions",
			setup:    func(t *testing.T, r *testRepo, req *Request, opts *Options) { req.Version = "^9" },
			sentinel: ErrNoMatchingVersion,
			says:     []string{`no version matches constraint "^9"`, "1.6.0, 1.5.0, 1.4.0, 1.3.0, 1.2.0, ... (7 in all)"},
		},
		{
			name:     "an exact version that is not published matches nothing",
			setup:    func(t *testing.T, r *testRepo, req *Request, opts *Options) { req.Version = "1.0.1" },
			sentinel: ErrNoMatchingVersion,
			says:     []string{`constraint "1.0.1"`},
		},
		{
			name:     "a malformed constraint is an invalid request",
			setup:    func(t *testing.T, r *testRepo, req *Request, opts *Options) { req.Version = ">>1" },
			sentinel: ErrInvalidRequest,
			says:     []string{`">>1" is neither a version nor a semver constraint`},
		},
		{
			name:     "a wrong password fails as authentication without showing the password",
			setup:    func(t *testing.T, r *testRepo, req *Request, opts *Options) { req.Password = "wrong-password" },
			sentinel: ErrAuth,
			says:     []string{"repository https://127.0.0.1:", "authentication failed (401)"},
		},
		{
			name:     "no credentials for a repository that needs them fails as authentication",
			setup:    func(t *testing.T, r *testRepo, req *Request, opts *Options) { req.Username, req.Password = "", "" },
			sentinel: ErrAuth,
			says:     []string{"authentication failed (401)"},
		},
		{
			name:     "an index over the cap is refused",
			setup:    func(t *testing.T, r *testRepo, req *Request, opts *Options) { opts.MaxIndexBytes = 64 },
			sentinel: ErrTooLarge,
			says:     []string{"index.yaml is", "of 64 bytes"},
		},
		{
			name: "an index over the cap is refused when it is streamed without a length",
			setup: func(t *testing.T, r *testRepo, req *Request, opts *Options) {
				opts.MaxIndexBytes = 64
				r.chunked = true
			},
			sentinel: ErrTooLarge,
			says:     []string{"index.yaml is larger than the limit of 64 bytes"},
		},
		{
			name: "a chart archive over the cap is refused",
			setup: func(t *testing.T, r *testRepo, req *Request, opts *Options) {
				opts.MaxChartBytes = 4096
				r.add(t, "web", "1.7.0", chartArchive(t, "web", "1.7.0", 8192))
			},
			sentinel: ErrTooLarge,
			says:     []string{`chart "web" 1.7.0 is`, "of 4096 bytes"},
		},
		{
			name: "a chart archive over the cap is refused when it is streamed without a length",
			setup: func(t *testing.T, r *testRepo, req *Request, opts *Options) {
				opts.MaxChartBytes = 4096
				r.chunked = true
				r.add(t, "web", "1.7.0", chartArchive(t, "web", "1.7.0", 8192))
			},
			sentinel: ErrTooLarge,
			says:     []string{`chart "web" 1.7.0 is larger than the limit of 4096 bytes`},
		},
		{
			name: "an archive that differs from the index's digest is refused",
			setup: func(t *testing.T, r *testRepo, req *Request, opts *Options) {
				r.files["/charts/web-1.6.0.tgz"] = chartArchive(t, "web", "1.6.0", 16)
			},
			sentinel: ErrDigestMismatch,
			says:     []string{`chart "web" 1.6.0: digest mismatch: the index says`},
		},
		{
			name: "an archive the index lists but the server lacks is not found",
			setup: func(t *testing.T, r *testRepo, req *Request, opts *Options) {
				delete(r.files, "/charts/web-1.6.0.tgz")
			},
			sentinel: ErrNotFound,
			says:     []string{`chart "web" 1.6.0 not found (404)`},
		},
		{
			name: "a repository without an index is not found",
			setup: func(t *testing.T, r *testRepo, req *Request, opts *Options) {
				req.Repository += "/elsewhere"
			},
			sentinel: ErrNotFound,
			says:     []string{"/elsewhere: index.yaml not found (404)"},
		},
		{
			name: "an index that is not a Helm index is refused",
			setup: func(t *testing.T, r *testRepo, req *Request, opts *Options) {
				r.files["/index.yaml"] = []byte("<html>not an index</html>")
			},
			sentinel: ErrBadRepository,
			says:     []string{"index.yaml: invalid repository content"},
		},
		{
			name: "a URL with credentials in it is refused, pointing at vault references",
			setup: func(t *testing.T, r *testRepo, req *Request, opts *Options) {
				req.Repository = strings.Replace(req.Repository, "https://", "https://"+testUser+":"+testPassword+"@", 1)
			},
			sentinel: ErrInvalidRequest,
			says:     []string{"carries credentials in its URL", "vault references"},
		},
		{
			name: "credentials over plain http are refused",
			setup: func(t *testing.T, r *testRepo, req *Request, opts *Options) {
				req.Repository = strings.Replace(req.Repository, "https://", "http://", 1)
			},
			sentinel: ErrInvalidRequest,
			says:     []string{"refusing to send credentials over plain http"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var versions [][2]string
			for _, v := range []string{"1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0", "1.5.0", "1.6.0"} {
				versions = append(versions, [2]string{"web", v})
			}
			r := newTestRepo(t, versions...)
			req := r.request("web", "")
			var opts Options
			tc.setup(t, r, &req, &opts)
			_, err := newFetcher(t, opts).Fetch(t.Context(), req)
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
			if !IsPermanent(err) && !errors.Is(err, ErrDigestMismatch) {
				t.Errorf("error %v is not permanent", err)
			}
		})
	}
}

// credentialRecorder is a second origin that counts requests arriving
// with an Authorization header.
type credentialRecorder struct {
	srv      *httptest.Server
	requests atomic.Int32
	withAuth atomic.Int32
}

func newCredentialRecorder(t *testing.T, body []byte) *credentialRecorder {
	t.Helper()
	c := &credentialRecorder{}
	c.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c.requests.Add(1)
		if req.Header.Get("Authorization") != "" {
			c.withAuth.Add(1)
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func TestFetchHTTPSendsCredentialsOnlyToTheRepository(t *testing.T) {
	isolateHome(t)
	for _, tc := range []struct {
		name  string
		point func(t *testing.T, r *testRepo, other string)
	}{
		{"a chart URL on another origin gets no credentials", func(t *testing.T, r *testRepo, other string) {
			r.entry(t, "web", "1.0.0").URLs = []string{other + "/web-1.0.0.tgz"}
		}},
		{"a redirect to another origin gets no credentials", func(t *testing.T, r *testRepo, other string) {
			r.redirects["/charts/web-1.0.0.tgz"] = other + "/web-1.0.0.tgz"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRepo(t, [2]string{"web", "1.0.0"})
			other := newCredentialRecorder(t, r.files["/charts/web-1.0.0.tgz"])
			tc.point(t, r, other.srv.URL)
			c, err := newFetcher(t, Options{}).Fetch(t.Context(), r.request("web", "1.0.0"))
			if err != nil {
				t.Fatal(err)
			}
			if c.Version != "1.0.0" {
				t.Fatalf("version %s", c.Version)
			}
			if other.requests.Load() != 1 {
				t.Fatalf("the other origin got %d requests, want 1", other.requests.Load())
			}
			if n := other.withAuth.Load(); n != 0 {
				t.Fatalf("the other origin got credentials %d times", n)
			}
		})
	}
	t.Run("a redirect within the repository's origin keeps the credentials", func(t *testing.T) {
		r := newTestRepo(t, [2]string{"web", "1.0.0"})
		r.files["/moved/web-1.0.0.tgz"] = r.files["/charts/web-1.0.0.tgz"]
		r.redirects["/charts/web-1.0.0.tgz"] = "/moved/web-1.0.0.tgz"
		if _, err := newFetcher(t, Options{}).Fetch(t.Context(), r.request("web", "1.0.0")); err != nil {
			t.Fatal(err)
		}
	})
}

func TestFetchHTTPStopsWithTheContext(t *testing.T) {
	isolateHome(t)
	r := newTestRepo(t, [2]string{"web", "1.0.0"})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := newFetcher(t, Options{}).Fetch(ctx, r.request("web", ""))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if IsPermanent(err) {
		t.Fatal("a cancelled fetch is reported as permanent")
	}
}
