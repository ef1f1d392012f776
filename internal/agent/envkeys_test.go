package agent_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
	"github.com/outposthq/outpost/internal/agent"
	"github.com/outposthq/outpost/internal/backoff"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/redact"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/internal/taskspec"
)

const (
	keysEnv   = "acme/prod"
	keysToken = "tok-keys"
)

// keyHub is a hand-written AgentService: just enough of a hub for an
// agent to run, recording what it registers as environment keys and in
// which order the agent calls it.
type keyHub struct {
	outpostv1connect.UnimplementedAgentServiceHandler

	refuse error // RegisterEnvironmentKeys fails with it when set

	mu         sync.Mutex
	calls      []string // method names in the order they arrived
	registered []*outpostv1.RegisterEnvironmentKeysRequest
	authz      []string // Authorization of each registration
	bodies     [][]byte // raw request bodies of the registrations
	endWatch   chan struct{}
}

func (h *keyHub) record(method string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, method)
}

func (h *keyHub) Challenge(context.Context, *connect.Request[outpostv1.ChallengeRequest]) (*connect.Response[outpostv1.ChallengeResponse], error) {
	return connect.NewResponse(&outpostv1.ChallengeResponse{Nonce: []byte("nonce")}), nil
}

func (h *keyHub) RefreshToken(context.Context, *connect.Request[outpostv1.RefreshTokenRequest]) (*connect.Response[outpostv1.RefreshTokenResponse], error) {
	return connect.NewResponse(&outpostv1.RefreshTokenResponse{Token: &outpostv1.AccessToken{
		Token: keysToken, ExpiresAt: timestamppb.New(time.Now().Add(15 * time.Minute)),
	}}), nil
}

// Watch sends a keep-alive and holds the stream until the test ends it
// with dropWatch.
func (h *keyHub) Watch(ctx context.Context, _ *connect.Request[outpostv1.WatchRequest], stream *connect.ServerStream[outpostv1.WatchResponse]) error {
	h.record("Watch")
	err := stream.Send(&outpostv1.WatchResponse{Event: &outpostv1.WatchResponse_Keepalive{Keepalive: &outpostv1.Keepalive{
		SentAt: timestamppb.Now(), Interval: durationpb.New(30 * time.Second),
	}}})
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-h.endWatch:
	}
	return nil
}

// dropWatch ends the agent's current Watch stream, as a hub restart would.
func (h *keyHub) dropWatch() { h.endWatch <- struct{}{} }

func (h *keyHub) Claim(context.Context, *connect.Request[outpostv1.ClaimRequest]) (*connect.Response[outpostv1.ClaimResponse], error) {
	h.record("Claim")
	return connect.NewResponse(&outpostv1.ClaimResponse{}), nil
}

func (h *keyHub) Heartbeat(context.Context, *connect.Request[outpostv1.HeartbeatRequest]) (*connect.Response[outpostv1.HeartbeatResponse], error) {
	return connect.NewResponse(&outpostv1.HeartbeatResponse{}), nil
}

func (h *keyHub) RegisterEnvironmentKeys(_ context.Context, req *connect.Request[outpostv1.RegisterEnvironmentKeysRequest]) (*connect.Response[outpostv1.RegisterEnvironmentKeysResponse], error) {
	h.record("RegisterEnvironmentKeys")
	h.mu.Lock()
	defer h.mu.Unlock()
	h.registered = append(h.registered, req.Msg)
	h.authz = append(h.authz, req.Header().Get("Authorization"))
	if h.refuse != nil {
		return nil, h.refuse
	}
	return connect.NewResponse(&outpostv1.RegisterEnvironmentKeysResponse{}), nil
}

func (h *keyHub) registrations() []*outpostv1.RegisterEnvironmentKeysRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.registered)
}

// serve runs h over TLS and returns its URL and a client trusting it. The
// bodies of registrations are kept as they arrived on the wire.
func (h *keyHub) serve(t *testing.T) (string, *http.Client) {
	t.Helper()
	h.endWatch = make(chan struct{})
	p, handler := outpostv1connect.NewAgentServiceHandler(h)
	mux := http.NewServeMux()
	mux.Handle(p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if path.Base(r.URL.Path) == "RegisterEnvironmentKeys" {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			h.mu.Lock()
			h.bodies = append(h.bodies, body)
			h.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		handler.ServeHTTP(w, r)
	}))
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL, srv.Client()
}

// fakeKeys is an EnvironmentKeys over an in-memory keyring.
type fakeKeys struct {
	mu     sync.Mutex
	kr     *seal.Keyring
	fail   int // the next fail calls return an error
	envs   []string
	called chan struct{}
}

func newFakeKeys(t *testing.T) *fakeKeys {
	t.Helper()
	k, err := seal.GenerateKey(keysEnv, 1)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := seal.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeKeys{kr: kr, called: make(chan struct{}, 100)}
}

func (f *fakeKeys) PublicKeys(_ context.Context, env string) ([]seal.PublicKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.envs = append(f.envs, env)
	select {
	case f.called <- struct{}{}:
	default:
	}
	if f.fail > 0 {
		f.fail--
		return nil, errors.New("keyring Secret unreachable")
	}
	var out []seal.PublicKey
	for _, v := range f.kr.Versions() {
		k, err := f.kr.Key(v)
		if err != nil {
			return nil, err
		}
		out = append(out, k.Public())
	}
	return out, nil
}

// privateKeys returns the keyring's private keys as stored, for checks
// that they never leave it.
func (f *fakeKeys) privateKeys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for name, v := range seal.EncodeKeyring(f.kr) {
		if name != seal.DataEnvironment {
			out = append(out, string(v))
		}
	}
	return out
}

type succeed struct{}

func (succeed) Execute(context.Context, executor.Task) (json.RawMessage, error) {
	return json.RawMessage(`{}`), nil
}

// logBuffer is an io.Writer safe for the agent's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runKeyAgent starts an already enrolled agent of keysEnv against h.
func runKeyAgent(t *testing.T, h *keyHub, keys agent.EnvironmentKeys, refresh time.Duration) *logBuffer {
	t.Helper()
	url, client := h.serve(t)
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := agent.FileIdentity{Path: filepath.Join(t.TempDir(), "identity.json")}
	if err := id.Save(t.Context(), agent.Identity{AgentID: "agt_keys", Environment: keysEnv, Key: key}); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	a, err := agent.New(agent.Options{
		HubURL:             url,
		HTTPClient:         client,
		Identity:           id,
		Executors:          map[string]executor.Executor{taskspec.KindHTTP: succeed{}},
		NewRedactor:        func() agent.Redactor { return redact.New() },
		Logger:             slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Reconnect:          backoff.Policy{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond},
		KeyRefreshInterval: refresh,
		EnvironmentKeys:    keys,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if err := a.Start(ctx); err != nil {
			t.Errorf("agent stopped: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-stopped
	})
	return logs
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEnvironmentKeysArePublished(t *testing.T) {
	t.Run("the public keys reach the hub before the first claim and again after a reconnect", func(t *testing.T) {
		h := &keyHub{}
		keys := newFakeKeys(t)
		logs := runKeyAgent(t, h, keys, time.Hour)
		waitFor(t, "the agent claims", func() bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			return slices.Contains(h.calls, "Claim")
		})
		h.mu.Lock()
		calls := slices.Clone(h.calls)
		h.mu.Unlock()
		if first, claim := slices.Index(calls, "RegisterEnvironmentKeys"), slices.Index(calls, "Claim"); first < 0 || first > claim {
			t.Fatalf("calls %v: the keys must be registered before the first claim", calls)
		}
		got := h.registrations()
		if len(got) != 1 {
			t.Fatalf("%d registrations after start, want 1 (the first Watch is not a reconnect)", len(got))
		}
		pub := keys.kr.Newest().Public()
		if k := got[0].GetKeys(); len(k) != 1 || k[0].GetVersion() != 1 || k[0].GetRecipient() != pub.Recipient ||
			k[0].GetFingerprint() != pub.Fingerprint || k[0].GetRetired() {
			t.Fatalf("registered %v, want version 1 with recipient %s and fingerprint %s", k, pub.Recipient, pub.Fingerprint)
		}
		keys.mu.Lock()
		asked := keys.envs[0]
		keys.mu.Unlock()
		if asked != keysEnv {
			t.Errorf("PublicKeys asked for %q, want the identity's environment %q", asked, keysEnv)
		}

		h.dropWatch()
		waitFor(t, "the keys are registered again after the reconnect", func() bool { return len(h.registrations()) == 2 })
		h.mu.Lock()
		defer h.mu.Unlock()
		for i, a := range h.authz {
			if a != "Bearer "+keysToken {
				t.Errorf("registration %d carried Authorization %q, want the access token", i, a)
			}
		}
		for _, priv := range keys.privateKeys() {
			for i, body := range h.bodies {
				if bytes.Contains(body, []byte(priv)) {
					t.Fatalf("registration %d carried a private key", i)
				}
			}
			if strings.Contains(logs.String(), priv) {
				t.Fatal("the agent logged a private key")
			}
		}
		if !strings.Contains(logs.String(), "environment keys published") || !strings.Contains(logs.String(), pub.Fingerprint) {
			t.Errorf("the log does not say which keys were published:\n%s", logs)
		}
	})

	t.Run("a rotation reaches the hub at the next refresh", func(t *testing.T) {
		h := &keyHub{}
		keys := newFakeKeys(t)
		runKeyAgent(t, h, keys, 50*time.Millisecond)
		waitFor(t, "the first registration", func() bool { return len(h.registrations()) > 0 })
		keys.mu.Lock()
		rotated, err := keys.kr.Rotate()
		keys.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "version 2 is registered", func() bool {
			regs := h.registrations()
			k := regs[len(regs)-1].GetKeys()
			return len(k) == 2 && k[1].GetVersion() == 2 && k[1].GetFingerprint() == rotated.Public().Fingerprint
		})
	})

	t.Run("a keyring that cannot be read is retried until it loads", func(t *testing.T) {
		h := &keyHub{}
		keys := newFakeKeys(t)
		keys.fail = 3
		logs := runKeyAgent(t, h, keys, time.Hour)
		waitFor(t, "the keys are registered", func() bool { return len(h.registrations()) == 1 })
		if !strings.Contains(logs.String(), "cannot load the environment keyring") {
			t.Errorf("the failures were not logged:\n%s", logs)
		}
	})

	t.Run("a refused registration is logged and not repeated until something changes", func(t *testing.T) {
		h := &keyHub{refuse: connect.NewError(connect.CodeFailedPrecondition, errors.New("key version 1 is registered with another recipient"))}
		keys := newFakeKeys(t)
		logs := runKeyAgent(t, h, keys, time.Hour)
		waitFor(t, "the agent claims", func() bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			return slices.Contains(h.calls, "Claim")
		})
		time.Sleep(200 * time.Millisecond) // many retry delays of the 10ms backoff
		if n := len(h.registrations()); n != 1 {
			t.Errorf("%d registrations, want 1: a refusal is not retried in a loop", n)
		}
		if !strings.Contains(logs.String(), "the hub refused the environment keys") || !strings.Contains(logs.String(), "another recipient") {
			t.Errorf("the refusal and its reason are not logged:\n%s", logs)
		}
	})
}
