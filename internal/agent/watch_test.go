package agent_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"path/filepath"
	"sync"
	"testing"
	"time"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/agent"
	"github.com/outposthq/outpost/internal/backoff"
	"github.com/outposthq/outpost/internal/devcert"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/hub"
	"github.com/outposthq/outpost/internal/hubtest"
	"github.com/outposthq/outpost/internal/redact"
	"github.com/outposthq/outpost/internal/taskspec"
)

// done is an executor that succeeds at once.
type done struct{}

func (done) Execute(context.Context, executor.Task) (json.RawMessage, error) {
	return json.RawMessage(`{}`), nil
}

// TestWatchOutlivesFirstMessageTimeout holds an agent's Watch stream past
// several FirstMessageTimeouts after a work notice: once the hub's first
// keep-alive has named its interval, the agent waits that long for the next
// message, however many notices come between.
func TestWatchOutlivesFirstMessageTimeout(t *testing.T) {
	const firstMsg = 300 * time.Millisecond
	// The hub's next keep-alive comes long after firstMsg has passed.
	h := hubtest.Start(t, hubtest.Options{Hub: func(o *hub.Options) { o.Keepalive = 5 * time.Second }})
	proxy, calls := countingProxy(t, h)
	boot := h.CreateEnvironment(t, "prod")
	a, err := agent.New(agent.Options{
		HubURL:              proxy,
		CAFile:              h.CAFile,
		Identity:            agent.FileIdentity{Path: filepath.Join(t.TempDir(), "identity.json")},
		BootstrapToken:      boot,
		Executors:           map[string]executor.Executor{taskspec.KindHTTP: done{}},
		NewRedactor:         func() agent.Redactor { return redact.New() },
		FirstMessageTimeout: firstMsg,
		Reconnect:           backoff.Policy{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		_ = a.Start(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-stopped
	})
	// The agent claims once the first keep-alive arrives; by then the hub
	// has subscribed the stream to wake-ups.
	deadline := time.Now().Add(10 * time.Second)
	for calls.get("Claim") == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}

	h.Enqueue(t, &outpostv1.EnqueueTaskRequest{Id: "noticed", Environment: "prod", Kind: taskspec.KindHTTP,
		Spec: []byte(`{"method":"GET","url":"https://example.invalid/"}`)})
	got := h.WaitTask(t, "noticed", 10*time.Second, hubtest.Terminal)
	if got.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("state %v", got.GetState())
	}
	time.Sleep(4 * firstMsg)
	if n := calls.get("Watch"); n != 1 {
		t.Fatalf("the agent opened %d Watch streams, want 1: it gave up on a healthy stream after a work notice", n)
	}
}

// callCounter counts calls by method name.
type callCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *callCounter) add(method string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[method]++
}

func (c *callCounter) get(method string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[method]
}

// countingProxy forwards every call to the hub and counts them by method.
// It serves the hub's own certificate so that one CA file covers both.
func countingProxy(t *testing.T, h *hubtest.Hub) (string, *callCounter) {
	t.Helper()
	target, err := url.Parse(h.URL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = h.Client.Transport
	rp.FlushInterval = -1
	calls := &callCounter{n: map[string]int{}}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.add(path.Base(r.URL.Path))
		rp.ServeHTTP(w, r)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = srv.ServeTLS(ln, filepath.Join(h.CertDir, devcert.CertFile), filepath.Join(h.CertDir, devcert.KeyFile))
	}()
	t.Cleanup(func() { _ = srv.Close() })
	return "https://" + ln.Addr().String(), calls
}
