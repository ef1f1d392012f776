package transport

import (
	"crypto/tls"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// connectProxy is a minimal HTTPS proxy: it answers CONNECT and splices
// bytes, as a corporate proxy does.
func connectProxy(t *testing.T, tunnels *atomic.Int32) *httptest.Server {
	t.Helper()
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		upstream, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		tunnels.Add(1)
		w.WriteHeader(http.StatusOK)
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			upstream.Close()
			return
		}
		go func() { _, _ = io.Copy(upstream, buf); upstream.Close() }()
		_, _ = io.Copy(conn, upstream)
		conn.Close()
	}))
}

func caFileFor(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.crt")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestProxyFromEnvironment comes first in the file: net/http reads the
// proxy variables once per process.
func TestProxyFromEnvironment(t *testing.T) {
	t.Run("the proxy defaults to the environment (HTTPS_PROXY, NO_PROXY)", func(t *testing.T) {
		t.Setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
		o := Options{}
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, "https://hub.example.com/", nil)
		u, err := o.Proxy(req)
		if err != nil || u == nil || u.Host != "proxy.corp.example:3128" {
			t.Fatalf("proxy for hub = %v, %v", u, err)
		}
	})
}

func TestClient(t *testing.T) {
	hub := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}))
	hub.EnableHTTP2 = true
	hub.StartTLS()
	defer hub.Close()
	ca := caFileFor(t, hub)

	t.Run("it reaches a hub through an HTTPS proxy tunnel, over HTTP/2", func(t *testing.T) {
		var tunnels atomic.Int32
		proxy := connectProxy(t, &tunnels)
		defer proxy.Close()
		pu, _ := url.Parse(proxy.URL)
		c, err := NewClient(Options{CAFile: ca, Proxy: http.ProxyURL(pu)})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Get(hub.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if tunnels.Load() != 1 || string(body) != "HTTP/2.0" {
			t.Fatalf("tunnels %d, protocol %q", tunnels.Load(), body)
		}
	})
	t.Run("it refuses a hub whose certificate no trusted CA signed", func(t *testing.T) {
		c, err := NewClient(Options{})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Get(hub.URL)
		if err == nil {
			resp.Body.Close()
		}
		var unknown *tls.CertificateVerificationError
		if !errors.As(err, &unknown) {
			t.Fatalf("error %v, want a certificate verification error", err)
		}
	})
	t.Run("it refuses a CA file without certificates", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "empty.pem")
		_ = os.WriteFile(p, []byte("not pem"), 0o600)
		if _, err := NewClient(Options{CAFile: p}); err == nil {
			t.Fatal("empty CA file accepted")
		}
	})
	t.Run("hub URLs must be https", func(t *testing.T) {
		for _, u := range []string{"http://hub:8443", "hub:8443", "ftp://hub", "https://"} {
			if _, err := CheckHubURL(u); err == nil {
				t.Errorf("%q accepted", u)
			}
		}
		if _, err := CheckHubURL("https://hub.example.com:8443"); err != nil {
			t.Error(err)
		}
	})

}
