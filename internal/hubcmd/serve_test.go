package hubcmd

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestMetricsListenMovesMetricsOffTheAPIPort serves the hub with
// --metrics-listen: /metrics answers there, over plain HTTP, and no longer
// on the API's TLS port, which an ingress exposes.
func TestMetricsListenMovesMetricsOffTheAPIPort(t *testing.T) {
	dir := t.TempDir()
	api, metrics := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	var stderr bytes.Buffer
	root := NewRootCommand(&bytes.Buffer{}, &stderr)
	root.SetArgs([]string{"serve", "--db", filepath.Join(dir, "hub.db"), "--dev-tls-dir", filepath.Join(dir, "tls"),
		"--listen", api, "--metrics-listen", metrics})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("serve: %v\n%s", err, stderr.String())
		}
	})

	get := func(client *http.Client, url string) (int, string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := client.Get(url)
			if err == nil {
				defer resp.Body.Close()
				var body bytes.Buffer
				_, _ = body.ReadFrom(resp.Body)
				return resp.StatusCode, body.String()
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v\n%s", url, err, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	var ca []byte
	for deadline := time.Now().Add(30 * time.Second); ; {
		var err error
		if ca, err = os.ReadFile(filepath.Join(dir, "tls", "ca.crt")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no development CA: %v\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}

	if code, body := get(http.DefaultClient, "http://"+metrics+"/metrics"); code != http.StatusOK || !strings.Contains(body, "outpost_connected_agents") {
		t.Fatalf("metrics port: HTTP %d, %.200s; want the metrics", code, body)
	}
	if code, _ := get(tlsClient, "https://"+api+"/metrics"); code != http.StatusNotFound {
		t.Fatalf("API port /metrics: HTTP %d, want 404 once metrics have their own listener", code)
	}
	if code, _ := get(tlsClient, "https://"+api+"/healthz"); code != http.StatusOK {
		t.Fatalf("API port /healthz: HTTP %d, want 200", code)
	}
}
