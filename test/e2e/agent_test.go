package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/agent"
	"github.com/outposthq/outpost/internal/backoff"
	"github.com/outposthq/outpost/internal/devcert"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/httpcall"
	"github.com/outposthq/outpost/internal/hub"
	"github.com/outposthq/outpost/internal/hubtest"
	"github.com/outposthq/outpost/internal/redact"
	"github.com/outposthq/outpost/internal/taskspec"
	"github.com/outposthq/outpost/internal/transport"
	"github.com/outposthq/outpost/internal/vault"
)

const secretValue = "s3cr3t-Zm9vYmFyYmF6LXRva2Vu"

// syncBuffer collects logs from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type agentRig struct {
	agent  *agent.Agent
	logs   *syncBuffer
	cancel context.CancelFunc
	// done is closed when Start returns; err is what it returned.
	done chan struct{}
	err  error
}

type agentConfig struct {
	bootstrap   string
	environment string
	identity    string
	concurrency int
	forcePoll   bool
	hubURL      string
	firstMsg    time.Duration
	// executors replaces the agent's executors when set.
	executors map[string]executor.Executor
}

func startAgent(t *testing.T, h *hubtest.Hub, cfg agentConfig) *agentRig {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	vaultFile := filepath.Join(t.TempDir(), "vault.json")
	if err := os.WriteFile(vaultFile, []byte(`{"payments/api":{"token":"`+secretValue+`"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	local, err := vault.NewLocal(vault.LocalOptions{Path: vaultFile})
	if err != nil {
		t.Fatal(err)
	}
	resolver, err := vault.NewResolver(vault.ResolverOptions{Providers: map[string]vault.Provider{"local": local}})
	if err != nil {
		t.Fatal(err)
	}
	internal, _ := transport.NewClient(transport.Options{})
	httpExec, err := httpcall.New(httpcall.Options{Client: internal, Vault: resolver, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.identity == "" {
		cfg.identity = filepath.Join(t.TempDir(), "identity.json")
	}
	if cfg.hubURL == "" {
		cfg.hubURL = h.URL
	}
	executors := map[string]executor.Executor{taskspec.KindHTTP: httpExec}
	if cfg.executors != nil {
		executors = cfg.executors
	}
	a, err := agent.New(agent.Options{
		HubURL:              cfg.hubURL,
		CAFile:              h.CAFile,
		Identity:            agent.FileIdentity{Path: cfg.identity},
		BootstrapToken:      cfg.bootstrap,
		Environment:         cfg.environment,
		Executors:           executors,
		Concurrency:         cfg.concurrency,
		NewRedactor:         func() agent.Redactor { return redact.New() },
		Logger:              log,
		ForcePoll:           cfg.forcePoll,
		FirstMessageTimeout: cfg.firstMsg,
		Reconnect:           backoff.Policy{Base: 50 * time.Millisecond, Max: 500 * time.Millisecond, Jitter: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &agentRig{agent: a, logs: logs, cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = a.Start(ctx)
		close(r.done)
	}()
	t.Cleanup(r.stop)
	return r
}

func (r *agentRig) stop() {
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(15 * time.Second):
	}
}

func fastHub(o *hub.Options) {
	o.RetryBackoff = backoff.Policy{Base: 50 * time.Millisecond, Max: 200 * time.Millisecond}
	o.SweepInterval = 100 * time.Millisecond
}

func httpTask(id, env, url string, extra map[string]any) *outpostv1.EnqueueTaskRequest {
	spec := map[string]any{"method": "GET", "url": url}
	for k, v := range extra {
		spec[k] = v
	}
	b, _ := json.Marshal(spec)
	return &outpostv1.EnqueueTaskRequest{Id: id, Environment: env, Kind: taskspec.KindHTTP, Spec: b}
}

func TestHTTPTaskEndToEnd(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{Hub: fastHub})
	boot := h.CreateEnvironment(t, "prod")
	var gotAuth atomic.Value
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth.Store(r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		// A careless internal API echoes the credential back.
		fmt.Fprintf(w, `{"ok":true,"echo":%q}`, r.Header.Get("Authorization"))
	}))
	defer api.Close()
	identity := filepath.Join(t.TempDir(), "identity.json")
	rig := startAgent(t, h, agentConfig{bootstrap: boot, environment: "acme/prod", identity: identity})

	task := h.Enqueue(t, httpTask("call-api", "prod", api.URL+"/v1/ping", map[string]any{
		"headers": map[string]string{"Authorization": "Bearer ${vault://local/payments/api/token}"},
	}))
	got := h.WaitTask(t, task.GetId(), 20*time.Second, hubtest.Terminal)

	t.Run("the task succeeds and the endpoint received the resolved credential", func(t *testing.T) {
		if got.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED {
			t.Fatalf("state %v, error %q", got.GetState(), got.GetError())
		}
		if gotAuth.Load() != "Bearer "+secretValue {
			t.Fatalf("endpoint saw Authorization %q", gotAuth.Load())
		}
	})
	t.Run("the secret appears nowhere: not in the result, the logs or the hub's database", func(t *testing.T) {
		if bytes.Contains(got.GetResult(), []byte(secretValue)) {
			t.Fatalf("result holds the secret: %s", got.GetResult())
		}
		if !bytes.Contains(got.GetResult(), []byte(`\"ok\":true`)) && !bytes.Contains(got.GetResult(), []byte(`"ok":true`)) && !bytes.Contains(got.GetResult(), []byte("ok")) {
			t.Fatalf("result lacks the response: %s", got.GetResult())
		}
		if strings.Contains(rig.logs.String(), secretValue) {
			t.Fatal("agent logs hold the secret")
		}
		assertNotInDir(t, filepath.Dir(identity), secretValue)
		assertNotInStore(t, h, secretValue)
	})
	t.Run("a restarted agent keeps its identity without a new bootstrap token", func(t *testing.T) {
		first := rig.agent.AgentID()
		rig.stop()
		again := startAgent(t, h, agentConfig{identity: identity})
		task := h.Enqueue(t, httpTask("after-restart", "prod", api.URL, nil))
		got := h.WaitTask(t, task.GetId(), 20*time.Second, hubtest.Terminal)
		if got.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED || got.GetAgentId() != first || again.agent.AgentID() != first {
			t.Fatalf("after restart: state %v agent %s, want agent %s", got.GetState(), got.GetAgentId(), first)
		}
	})
}

func TestMissingVaultKeySendsNothing(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{Hub: fastHub})
	boot := h.CreateEnvironment(t, "prod")
	var hits atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer api.Close()
	startAgent(t, h, agentConfig{bootstrap: boot})
	task := h.Enqueue(t, httpTask("missing-key", "prod", api.URL, map[string]any{
		"headers": map[string]string{"X-Api-Key": "vault://local/payments/api/nope"},
	}))
	got := h.WaitTask(t, task.GetId(), 20*time.Second, hubtest.Terminal)
	if got.GetState() != outpostv1.TaskState_TASK_STATE_FAILED || got.GetAttempt() != 1 {
		t.Fatalf("state %v after %d attempts, want failed after 1 (terminal)", got.GetState(), got.GetAttempt())
	}
	if !strings.Contains(got.GetError(), "vault://local/payments/api/nope") {
		t.Fatalf("error %q does not name the reference", got.GetError())
	}
	if hits.Load() != 0 {
		t.Fatalf("endpoint received %d requests", hits.Load())
	}
}

func TestRetriesCancellationDeadlinesAndConflictKeys(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{Hub: fastHub})
	boot := h.CreateEnvironment(t, "prod")
	var (
		mu          sync.Mutex
		attempts    = map[string]int{}
		inFlight    = map[string]int{}
		maxInFlight = map[string]int{}
		cancelled   = make(chan string, 10)
	)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		group := q.Get("group")
		mu.Lock()
		attempts[r.URL.Path]++
		n := attempts[r.URL.Path]
		inFlight[group]++
		maxInFlight[group] = max(maxInFlight[group], inFlight[group])
		mu.Unlock()
		defer func() {
			mu.Lock()
			inFlight[group]--
			mu.Unlock()
		}()
		if d, err := time.ParseDuration(q.Get("sleep")); err == nil {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				cancelled <- r.URL.Path
				return
			}
		}
		if k, err := strconv.Atoi(q.Get("fail")); err == nil && n <= k {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "done")
	}))
	defer api.Close()
	startAgent(t, h, agentConfig{bootstrap: boot, concurrency: 4})

	t.Run("a failing call is retried with backoff until it succeeds", func(t *testing.T) {
		task := h.Enqueue(t, httpTask("flaky", "prod", api.URL+"/flaky?fail=2", nil))
		got := h.WaitTask(t, task.GetId(), 20*time.Second, hubtest.Terminal)
		if got.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED || got.GetAttempt() != 3 {
			t.Fatalf("state %v after %d attempts, want succeeded after 3", got.GetState(), got.GetAttempt())
		}
	})
	t.Run("a task that keeps failing stops at max attempts", func(t *testing.T) {
		req := httpTask("hopeless", "prod", api.URL+"/hopeless?fail=99", nil)
		req.MaxAttempts = 2
		h.Enqueue(t, req)
		got := h.WaitTask(t, "hopeless", 20*time.Second, hubtest.Terminal)
		if got.GetState() != outpostv1.TaskState_TASK_STATE_FAILED || got.GetAttempt() != 2 {
			t.Fatalf("state %v after %d attempts, want failed after 2", got.GetState(), got.GetAttempt())
		}
	})
	t.Run("cancelling a running task cancels the executor's request", func(t *testing.T) {
		h.Enqueue(t, httpTask("slow", "prod", api.URL+"/slow?sleep=60s", map[string]any{"timeout_seconds": 120}))
		h.WaitTask(t, "slow", 20*time.Second, func(t *outpostv1.Task) bool { return t.GetState() == outpostv1.TaskState_TASK_STATE_LEASED })
		time.Sleep(300 * time.Millisecond) // the request is in flight
		if _, err := h.Operator.CancelTask(t.Context(), connect.NewRequest(&outpostv1.CancelTaskRequest{Id: "slow"})); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-cancelled:
			if p != "/slow" {
				t.Fatalf("cancelled %s", p)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the endpoint's request was not cancelled")
		}
		got := h.WaitTask(t, "slow", 20*time.Second, hubtest.Terminal)
		if got.GetState() != outpostv1.TaskState_TASK_STATE_CANCELLED {
			t.Fatalf("state %v, want cancelled", got.GetState())
		}
	})
	t.Run("a task past its deadline fails without retry", func(t *testing.T) {
		req := httpTask("late", "prod", api.URL+"/late?sleep=30s", map[string]any{"timeout_seconds": 120})
		req.Timeout = durationpb.New(time.Second)
		h.Enqueue(t, req)
		got := h.WaitTask(t, "late", 20*time.Second, hubtest.Terminal)
		if got.GetState() != outpostv1.TaskState_TASK_STATE_FAILED || !strings.Contains(got.GetError(), "deadline") {
			t.Fatalf("state %v error %q, want failed on its deadline", got.GetState(), got.GetError())
		}
	})
	t.Run("tasks sharing a conflict key never overlap; independent tasks run in parallel", func(t *testing.T) {
		var ids []string
		for i := range 3 {
			req := httpTask(fmt.Sprintf("keyed-%d", i), "prod", api.URL+fmt.Sprintf("/keyed-%d?group=keyed&sleep=300ms", i), nil)
			req.ConflictKeys = []string{"helm/prod/web"}
			h.Enqueue(t, req)
			ids = append(ids, req.Id)
			req = httpTask(fmt.Sprintf("free-%d", i), "prod", api.URL+fmt.Sprintf("/free-%d?group=free&sleep=300ms", i), nil)
			h.Enqueue(t, req)
			ids = append(ids, req.Id)
		}
		for _, id := range ids {
			if got := h.WaitTask(t, id, 30*time.Second, hubtest.Terminal); got.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED {
				t.Fatalf("%s: %v %s", id, got.GetState(), got.GetError())
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if maxInFlight["keyed"] != 1 {
			t.Fatalf("%d tasks with one conflict key ran at once", maxInFlight["keyed"])
		}
		if maxInFlight["free"] < 2 {
			t.Fatalf("independent tasks never overlapped (max %d in flight)", maxInFlight["free"])
		}
	})
}

func TestAgentConnectivity(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{Hub: func(o *hub.Options) {
		fastHub(o)
		o.AccessTokenTTL = 3 * time.Second
	}})
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") }))
	defer api.Close()

	t.Run("a long-polling agent gets work in well under a second", func(t *testing.T) {
		boot := h.CreateEnvironment(t, "polling")
		startAgent(t, h, agentConfig{bootstrap: boot, forcePoll: true})
		waitConnected(t, h, "polling")
		start := time.Now()
		h.Enqueue(t, httpTask("polled", "polling", api.URL, nil))
		got := h.WaitTask(t, "polled", 10*time.Second, hubtest.Terminal)
		if got.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED {
			t.Fatalf("state %v", got.GetState())
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("poll delivery took %v", d)
		}
	})

	t.Run("behind a proxy that buffers streams the agent falls back to long-poll", func(t *testing.T) {
		boot := h.CreateEnvironment(t, "buffered")
		proxy := bufferingProxy(t, h)
		rig := startAgent(t, h, agentConfig{bootstrap: boot, hubURL: proxy, firstMsg: 500 * time.Millisecond})
		h.Enqueue(t, httpTask("through-proxy", "buffered", api.URL, nil))
		got := h.WaitTask(t, "through-proxy", 20*time.Second, hubtest.Terminal)
		if got.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED {
			t.Fatalf("state %v", got.GetState())
		}
		if !strings.Contains(rig.logs.String(), "long-polling instead") {
			t.Fatal("agent never switched to long-poll")
		}
	})

	t.Run("the agent refreshes its short-lived token and keeps working", func(t *testing.T) {
		boot := h.CreateEnvironment(t, "refresh")
		startAgent(t, h, agentConfig{bootstrap: boot})
		time.Sleep(7 * time.Second) // more than two token lifetimes
		h.Enqueue(t, httpTask("after-refresh", "refresh", api.URL, nil))
		got := h.WaitTask(t, "after-refresh", 10*time.Second, hubtest.Terminal)
		if got.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED {
			t.Fatalf("state %v", got.GetState())
		}
	})

	t.Run("a disabled agent stops with ErrDisabled", func(t *testing.T) {
		boot := h.CreateEnvironment(t, "doomed")
		rig := startAgent(t, h, agentConfig{bootstrap: boot})
		id := waitConnected(t, h, "doomed")
		if _, err := h.Operator.DisableAgent(t.Context(), connect.NewRequest(&outpostv1.DisableAgentRequest{AgentId: id})); err != nil {
			t.Fatal(err)
		}
		select {
		case <-rig.done:
			if !errors.Is(rig.err, agent.ErrDisabled) {
				t.Fatalf("agent stopped with %v, want ErrDisabled", rig.err)
			}
		case <-time.After(40 * time.Second):
			t.Fatal("disabled agent kept running")
		}
	})

	t.Run("an agent refuses to start against a hub offering only TLS 1.1", func(t *testing.T) {
		old := hubtest.Start(t, hubtest.Options{MaxTLSVersion: tls.VersionTLS11})
		rig := startAgent(t, old, agentConfig{bootstrap: "opb_unused"})
		select {
		case <-rig.done:
			if rig.err == nil || !strings.Contains(rig.err.Error(), "protocol version") {
				t.Fatalf("agent stopped with %v, want a TLS protocol version error", rig.err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("agent kept retrying a hub without TLS 1.2")
		}
	})

	t.Run("an agent refuses a hub URL that is not https", func(t *testing.T) {
		_, err := agent.New(agent.Options{HubURL: "http://" + h.Addr, Identity: agent.FileIdentity{Path: filepath.Join(t.TempDir(), "id")}, Executors: map[string]executor.Executor{"x": nil}, NewRedactor: func() agent.Redactor { return redact.New() }})
		if !errors.Is(err, transport.ErrInsecureHub) {
			t.Fatalf("New() = %v, want ErrInsecureHub", err)
		}
	})
}

// waitConnected waits for an environment's agent to show as connected and
// returns its id.
func waitConnected(t *testing.T, h *hubtest.Hub, env string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := h.Operator.ListAgents(t.Context(), connect.NewRequest(&outpostv1.ListAgentsRequest{Environment: env}))
		if err == nil {
			for _, a := range resp.Msg.GetAgents() {
				if a.GetConnected() {
					return a.GetId()
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no agent of %s connected", env)
	return ""
}

// bufferingProxy forwards every call to the hub except Watch streams, which
// it holds without passing a byte, as a buffering proxy would. It serves the
// hub's own certificate so that one CA file covers both.
func bufferingProxy(t *testing.T, h *hubtest.Hub) string {
	t.Helper()
	target, _ := url.Parse(h.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = h.Client.Transport
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/Watch") {
			<-r.Context().Done()
			return
		}
		rp.ServeHTTP(w, r)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = srv.ServeTLS(ln, filepath.Join(h.CertDir, devcert.CertFile), filepath.Join(h.CertDir, devcert.KeyFile))
	}()
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String()
}

func assertNotInDir(t *testing.T, dir, secret string) {
	t.Helper()
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil //nolint:nilerr // unreadable entries are skipped
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the secret", p)
		}
		return nil
	})
}

// assertNotInStore scans every file of the hub's SQLite database (main file
// and WAL) for the secret.
func assertNotInStore(t *testing.T, h *hubtest.Hub, secret string) {
	t.Helper()
	resp, err := h.Operator.ListTasks(t.Context(), connect.NewRequest(&outpostv1.ListTasksRequest{Limit: 500}))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range resp.Msg.GetTasks() {
		if bytes.Contains([]byte(task.String()), []byte(secret)) {
			t.Fatalf("task %s holds the secret", task.GetId())
		}
	}
	if h.DBPath == "" {
		return
	}
	for _, suffix := range []string{"", "-wal"} {
		f, err := os.Open(h.DBPath + suffix)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if bytes.Contains(b, []byte(secret)) {
			t.Fatalf("hub database file %s holds the secret", h.DBPath+suffix)
		}
	}
}
