package cli

import (
	"bytes"
	"encoding/pem"
	"flag"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// harness runs the CLI in-process against a fakeHub served over TLS.
type harness struct {
	t          *testing.T
	hub        *fakeHub
	url        string
	caFile     string
	dir        string
	configPath string
	env        map[string]string
	stdin      string
	// terminal makes the CLI take stdin for a terminal a person answers on.
	terminal bool
}

// result is what one CLI invocation showed the user.
type result struct {
	stdout, stderr string
	err            error
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	hub := newFakeHub()
	mux := http.NewServeMux()
	mux.Handle(outpostv1connect.NewOperatorServiceHandler(hub))
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	// Handshakes refused on purpose (missing CA) would only add noise.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	caFile := filepath.Join(dir, "hub-ca.pem")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return &harness{
		t: t, hub: hub, url: srv.URL, caFile: caFile, dir: dir,
		configPath: filepath.Join(dir, "config", "outpost", "config.yaml"),
		env:        map[string]string{},
	}
}

// run executes `outpost args...` and returns what it printed.
func (h *harness) run(args ...string) result {
	h.t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := NewRootCommand(Options{
		Stdout:          &stdout,
		Stderr:          &stderr,
		Stdin:           strings.NewReader(h.stdin),
		StdinIsTerminal: func() bool { return h.terminal },
		ConfigPath:      h.configPath,
		Getenv:          func(k string) string { return h.env[k] },
		Now:             func() time.Time { return fakeNow },
		Location:        time.UTC,
		PollInterval:    time.Millisecond,
		MaxPollInterval: 4 * time.Millisecond,
	})
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(h.t.Context())
	return result{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// mustRun is run for commands that must succeed.
func (h *harness) mustRun(args ...string) result {
	h.t.Helper()
	r := h.run(args...)
	if r.err != nil {
		h.t.Fatalf("outpost %s: %v\nstderr: %s", strings.Join(args, " "), r.err, r.stderr)
	}
	return r
}

// login stores the fake hub's URL, token and CA in the harness's config.
func (h *harness) login() *harness {
	h.t.Helper()
	h.mustRun("login", "--hub", h.url, "--token", fakeToken, "--ca-file", h.caFile)
	return h
}

// normalize replaces what changes between runs (server port, temp dir).
func (h *harness) normalize(s string) string {
	s = strings.ReplaceAll(s, h.url, "https://hub.test")
	return strings.ReplaceAll(s, h.dir, "$TMP")
}

// golden compares got with testdata/name.golden, rewriting it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path) //nolint:gosec // a golden file of this package
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run go test -update if the change is intended)\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

func assertErrorContains(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}
