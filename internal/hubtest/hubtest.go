package hubtest

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
	"github.com/outposthq/outpost/internal/devcert"
	"github.com/outposthq/outpost/internal/hub"
	"github.com/outposthq/outpost/internal/store"
	"github.com/outposthq/outpost/internal/store/sqlite"
	"github.com/outposthq/outpost/internal/transport"
)

// Options tune Start.
type Options struct {
	// Store to serve; a fresh SQLite file when nil.
	Store store.Store
	// Hub adjusts the hub options before the hub is built.
	Hub func(*hub.Options)
	// MaxTLSVersion, when set, caps the TLS version the hub offers.
	MaxTLSVersion uint16
	// Tenant for the operator token ("acme" when empty).
	Tenant string
	// CAFile/CertFile/KeyFile reuse an existing certificate (e.g. to
	// restart a hub on the same address).
	CertDir string
	// Addr to listen on; a free loopback port when empty.
	Addr string
}

// Hub is a running hub.
type Hub struct {
	URL        string
	Addr       string
	CAFile     string
	CertDir    string
	Client     *http.Client
	Operator   outpostv1connect.OperatorServiceClient
	Store      store.Store
	Hub        *hub.Hub
	Tenant     string
	AdminToken string
	// DBPath is the SQLite file when Start opened the store.
	DBPath string

	stop context.CancelFunc
	done chan struct{}
}

// Start runs a hub until the test ends (or Stop is called).
func Start(t testing.TB, opts Options) *Hub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if opts.Tenant == "" {
		opts.Tenant = "acme"
	}
	st := opts.Store
	var dbPath string
	if st == nil {
		var err error
		dbPath = filepath.Join(t.TempDir(), "hub.db")
		st, err = sqlite.Open(ctx, sqlite.Options{Path: dbPath})
		if err != nil {
			t.Fatalf("hubtest: open store: %v", err)
		}
		t.Cleanup(func() { st.Close() })
	}
	certDir := opts.CertDir
	if certDir == "" {
		certDir = t.TempDir()
	}
	caFile, certFile, keyFile, err := devcert.Ensure(certDir, []string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatalf("hubtest: certificate: %v", err)
	}
	hopts := hub.Options{Store: st}
	if opts.Hub != nil {
		opts.Hub(&hopts)
	}
	h, err := hub.New(ctx, hopts)
	if err != nil {
		t.Fatalf("hubtest: new hub: %v", err)
	}
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	for i := 0; ; i++ {
		ln, err = net.Listen("tcp", addr)
		if err == nil || i > 50 {
			break
		}
		time.Sleep(100 * time.Millisecond) // the previous hub on addr is closing
	}
	if err != nil {
		t.Fatalf("hubtest: listen: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		go func() { _ = h.Start(ctx) }()
		err := hub.Serve(ctx, hub.ServeOptions{Listener: ln, CertFile: certFile, KeyFile: keyFile, Handler: h.Handler(), MaxVersion: opts.MaxTLSVersion, MinVersion: minFor(opts.MaxTLSVersion)})
		if err != nil {
			t.Logf("hubtest: serve: %v", err)
		}
	}()
	client, err := transport.NewClient(transport.Options{CAFile: caFile})
	if err != nil {
		t.Fatalf("hubtest: client: %v", err)
	}
	hb := &Hub{
		URL: "https://" + ln.Addr().String(), Addr: ln.Addr().String(), CAFile: caFile, CertDir: certDir,
		Client: client, Store: st, Hub: h, DBPath: dbPath, Tenant: opts.Tenant, stop: cancel, done: done,
	}
	if opts.MaxTLSVersion == 0 || opts.MaxTLSVersion >= tls.VersionTLS12 {
		tok, err := hub.CreateAdminToken(ctx, st, opts.Tenant, "test", 0, time.Now())
		if err != nil {
			t.Fatalf("hubtest: admin token: %v", err)
		}
		hb.AdminToken = tok
		hb.Operator = outpostv1connect.NewOperatorServiceClient(client, hb.URL, connect.WithInterceptors(WithToken(tok)))
	}
	t.Cleanup(hb.Stop)
	return hb
}

func minFor(maxVersion uint16) uint16 {
	if maxVersion != 0 && maxVersion < tls.VersionTLS12 {
		return tls.VersionTLS10
	}
	return 0
}

// Stop shuts the hub down and waits for it.
func (h *Hub) Stop() {
	h.stop()
	<-h.done
}

// bearer is an interceptor adding the current token to every call.
type bearer func() string

func (b bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if tok := b(); tok != "" {
			req.Header().Set("Authorization", "Bearer "+tok)
		}
		return next(ctx, req)
	}
}

func (b bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		if tok := b(); tok != "" {
			conn.RequestHeader().Set("Authorization", "Bearer "+tok)
		}
		return conn
	}
}

func (bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// WithToken returns an interceptor that sends tok as a bearer token.
func WithToken(tok string) connect.Interceptor { return bearer(func() string { return tok }) }

// WithTokenFunc returns an interceptor that sends the token fn returns at
// each call, so a test can swap tokens.
func WithTokenFunc(fn func() string) connect.Interceptor { return bearer(fn) }

// CreateEnvironment creates an environment and returns a bootstrap token.
func (h *Hub) CreateEnvironment(t testing.TB, name string) string {
	t.Helper()
	if _, err := h.Operator.CreateEnvironment(context.Background(), connect.NewRequest(&outpostv1.CreateEnvironmentRequest{Name: name})); err != nil {
		t.Fatalf("hubtest: create environment %s: %v", name, err)
	}
	return h.BootstrapToken(t, name)
}

// BootstrapToken mints a bootstrap token for an environment.
func (h *Hub) BootstrapToken(t testing.TB, env string) string {
	t.Helper()
	resp, err := h.Operator.CreateBootstrapToken(context.Background(), connect.NewRequest(&outpostv1.CreateBootstrapTokenRequest{Environment: env, Ttl: durationpb.New(time.Hour)}))
	if err != nil {
		t.Fatalf("hubtest: bootstrap token: %v", err)
	}
	return resp.Msg.GetToken()
}

// Enqueue enqueues a task and fails the test on error.
func (h *Hub) Enqueue(t testing.TB, req *outpostv1.EnqueueTaskRequest) *outpostv1.Task {
	t.Helper()
	resp, err := h.Operator.EnqueueTask(context.Background(), connect.NewRequest(req))
	if err != nil {
		t.Fatalf("hubtest: enqueue %s: %v", req.GetId(), err)
	}
	return resp.Msg.GetTask()
}

// WaitTask polls a task until cond holds or the timeout passes.
func (h *Hub) WaitTask(t testing.TB, id string, timeout time.Duration, cond func(*outpostv1.Task) bool) *outpostv1.Task {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last *outpostv1.Task
	for time.Now().Before(deadline) {
		resp, err := h.Operator.GetTask(context.Background(), connect.NewRequest(&outpostv1.GetTaskRequest{Id: id}))
		if err == nil {
			last = resp.Msg.GetTask()
			if cond(last) {
				return last
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("hubtest: task %s did not reach the expected state in %v; last: %v", id, timeout, last)
	return nil
}

// Terminal is a WaitTask condition: the task finished.
func Terminal(t *outpostv1.Task) bool {
	switch t.GetState() {
	case outpostv1.TaskState_TASK_STATE_SUCCEEDED, outpostv1.TaskState_TASK_STATE_FAILED, outpostv1.TaskState_TASK_STATE_CANCELLED:
		return true
	}
	return false
}

// WriteFile writes a file under dir with mode 0600 and returns its path.
func WriteFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
