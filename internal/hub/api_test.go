package hub_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/protobuf/types/known/durationpb"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
	"github.com/outposthq/outpost/internal/audit"
	"github.com/outposthq/outpost/internal/auth"
	"github.com/outposthq/outpost/internal/hub"
	"github.com/outposthq/outpost/internal/hubtest"
)

// clock is a settable clock for the hub.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// rawAgent speaks the agent API by hand, so tests can send what a real
// agent never would.
type rawAgent struct {
	client outpostv1connect.AgentServiceClient
	key    ed25519.PrivateKey
	id     string
	token  string
}

func newRawAgent(h *hubtest.Hub) *rawAgent {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	a := &rawAgent{key: key}
	a.client = outpostv1connect.NewAgentServiceClient(h.Client, h.URL, connect.WithInterceptors(hubtest.WithTokenFunc(func() string { return a.token })))
	return a
}

func (a *rawAgent) nonce(t *testing.T) []byte {
	t.Helper()
	resp, err := a.client.Challenge(t.Context(), connect.NewRequest(&outpostv1.ChallengeRequest{}))
	if err != nil {
		t.Fatalf("challenge: %v", err)
	}
	return resp.Msg.GetNonce()
}

func (a *rawAgent) enrollReq(t *testing.T, bootstrap, env string) *outpostv1.EnrollRequest {
	nonce := a.nonce(t)
	return &outpostv1.EnrollRequest{
		BootstrapToken: bootstrap, PublicKey: a.key.Public().(ed25519.PublicKey),
		Nonce: nonce, Signature: auth.SignEnroll(a.key, nonce), Environment: env, Hostname: "test",
	}
}

func (a *rawAgent) enroll(t *testing.T, bootstrap, env string) error {
	t.Helper()
	resp, err := a.client.Enroll(t.Context(), connect.NewRequest(a.enrollReq(t, bootstrap, env)))
	if err != nil {
		return err
	}
	a.id, a.token = resp.Msg.GetAgentId(), resp.Msg.GetToken().GetToken()
	return nil
}

func mustEnroll(t *testing.T, h *hubtest.Hub, env string) *rawAgent {
	t.Helper()
	a := newRawAgent(h)
	if err := a.enroll(t, h.BootstrapToken(t, env), ""); err != nil {
		t.Fatalf("enroll: %v", err)
	}
	return a
}

func wantCode(t *testing.T, err error, code connect.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("call succeeded, want %v", code)
	}
	if got := connect.CodeOf(err); got != code {
		t.Fatalf("error %v has code %v, want %v", err, got, code)
	}
}

func httpSpec(url string) []byte {
	return []byte(`{"method":"GET","url":"` + url + `"}`)
}

func TestEnrollment(t *testing.T) {
	clk := &clock{}
	h := hubtest.Start(t, hubtest.Options{Hub: func(o *hub.Options) { o.Now = clk.Now }})
	h.CreateEnvironment(t, "prod")
	h.CreateEnvironment(t, "dev")

	t.Run("an agent enrolls with a bootstrap token and gets a 15-minute token for its environment", func(t *testing.T) {
		a := newRawAgent(h)
		resp, err := a.client.Enroll(t.Context(), connect.NewRequest(a.enrollReq(t, h.BootstrapToken(t, "prod"), "acme/prod")))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Msg.GetEnvironment() != "acme/prod" {
			t.Fatalf("environment = %q", resp.Msg.GetEnvironment())
		}
		life := time.Until(resp.Msg.GetToken().GetExpiresAt().AsTime())
		if life < 14*time.Minute || life > 16*time.Minute {
			t.Fatalf("token lives %v, want 15m", life)
		}
	})

	t.Run("a bootstrap token works only once", func(t *testing.T) {
		tok := h.BootstrapToken(t, "prod")
		if err := newRawAgent(h).enroll(t, tok, ""); err != nil {
			t.Fatal(err)
		}
		wantCode(t, newRawAgent(h).enroll(t, tok, ""), connect.CodePermissionDenied)
	})

	t.Run("an expired bootstrap token is refused", func(t *testing.T) {
		resp, err := h.Operator.CreateBootstrapToken(t.Context(), connect.NewRequest(&outpostv1.CreateBootstrapTokenRequest{Environment: "prod", Ttl: durationpb.New(time.Minute)}))
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(2 * time.Minute)
		wantCode(t, newRawAgent(h).enroll(t, resp.Msg.GetToken(), ""), connect.CodePermissionDenied)
	})

	t.Run("a bootstrap token for another environment is refused and stays usable", func(t *testing.T) {
		tok := h.BootstrapToken(t, "dev")
		wantCode(t, newRawAgent(h).enroll(t, tok, "acme/prod"), connect.CodePermissionDenied)
		if err := newRawAgent(h).enroll(t, tok, "acme/dev"); err != nil {
			t.Fatalf("token was consumed by the refused attempt: %v", err)
		}
	})

	t.Run("a bootstrap token may not live longer than two hours", func(t *testing.T) {
		_, err := h.Operator.CreateBootstrapToken(t.Context(), connect.NewRequest(&outpostv1.CreateBootstrapTokenRequest{Environment: "prod", Ttl: durationpb.New(3 * time.Hour)}))
		wantCode(t, err, connect.CodeInvalidArgument)
	})

	t.Run("a replayed proof of possession is refused", func(t *testing.T) {
		a := newRawAgent(h)
		req := a.enrollReq(t, h.BootstrapToken(t, "prod"), "")
		if _, err := a.client.Enroll(t.Context(), connect.NewRequest(req)); err != nil {
			t.Fatal(err)
		}
		req.BootstrapToken = h.BootstrapToken(t, "prod")
		_, err := a.client.Enroll(t.Context(), connect.NewRequest(req))
		wantCode(t, err, connect.CodePermissionDenied)
	})

	t.Run("a forged signature burns neither nonce nor token", func(t *testing.T) {
		a := newRawAgent(h)
		tok := h.BootstrapToken(t, "prod")
		req := a.enrollReq(t, tok, "")
		good := bytes.Clone(req.Signature)
		req.Signature[0] ^= 0xff
		_, err := a.client.Enroll(t.Context(), connect.NewRequest(req))
		wantCode(t, err, connect.CodePermissionDenied)
		req.Signature = good
		if _, err := a.client.Enroll(t.Context(), connect.NewRequest(req)); err != nil {
			t.Fatalf("the valid request after a forged one failed: %v", err)
		}
	})

	t.Run("a refresh needs a fresh proof, and a refresh proof cannot be replayed", func(t *testing.T) {
		a := mustEnroll(t, h, "prod")
		nonce := a.nonce(t)
		req := &outpostv1.RefreshTokenRequest{AgentId: a.id, Nonce: nonce, Signature: auth.SignRefresh(a.key, nonce, a.id)}
		if _, err := a.client.RefreshToken(t.Context(), connect.NewRequest(req)); err != nil {
			t.Fatal(err)
		}
		_, err := a.client.RefreshToken(t.Context(), connect.NewRequest(req))
		wantCode(t, err, connect.CodeUnauthenticated)
	})
}

func TestAgentCalls(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{})
	h.CreateEnvironment(t, "prod")
	h.CreateEnvironment(t, "dev")

	t.Run("a disabled agent is refused at its next call, before its token expires", func(t *testing.T) {
		a := mustEnroll(t, h, "prod")
		if _, err := a.client.Heartbeat(t.Context(), connect.NewRequest(&outpostv1.HeartbeatRequest{})); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Operator.DisableAgent(t.Context(), connect.NewRequest(&outpostv1.DisableAgentRequest{AgentId: a.id})); err != nil {
			t.Fatal(err)
		}
		_, err := a.client.Claim(t.Context(), connect.NewRequest(&outpostv1.ClaimRequest{MaxTasks: 1}))
		wantCode(t, err, connect.CodePermissionDenied)
		nonce := a.nonce(t)
		_, err = a.client.RefreshToken(t.Context(), connect.NewRequest(&outpostv1.RefreshTokenRequest{AgentId: a.id, Nonce: nonce, Signature: auth.SignRefresh(a.key, nonce, a.id)}))
		wantCode(t, err, connect.CodePermissionDenied)
	})

	t.Run("an agent of one environment cannot claim, renew or report another's tasks", func(t *testing.T) {
		prod := mustEnroll(t, h, "prod")
		dev := mustEnroll(t, h, "dev")
		h.Enqueue(t, &outpostv1.EnqueueTaskRequest{Id: "cross-env", Environment: "prod", Kind: "http", Spec: httpSpec("https://example.invalid/")})
		resp, err := dev.client.Claim(t.Context(), connect.NewRequest(&outpostv1.ClaimRequest{MaxTasks: 10}))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range resp.Msg.GetLeases() {
			if l.GetTask().GetId() == "cross-env" {
				t.Fatal("dev agent claimed a prod task")
			}
		}
		claimed, err := prod.client.Claim(t.Context(), connect.NewRequest(&outpostv1.ClaimRequest{MaxTasks: 10}))
		if err != nil || len(claimed.Msg.GetLeases()) == 0 {
			t.Fatalf("prod agent could not claim: %v", err)
		}
		epoch := claimed.Msg.GetLeases()[0].GetEpoch()
		_, err = dev.client.RenewLease(t.Context(), connect.NewRequest(&outpostv1.RenewLeaseRequest{TaskId: "cross-env", Epoch: epoch}))
		wantCode(t, err, connect.CodeAborted)
		_, err = dev.client.ReportResult(t.Context(), connect.NewRequest(&outpostv1.ReportResultRequest{TaskId: "cross-env", Epoch: epoch, Outcome: outpostv1.Outcome_OUTCOME_SUCCEEDED, Result: []byte(`{"forged":true}`)}))
		wantCode(t, err, connect.CodeAborted)
		got := h.WaitTask(t, "cross-env", time.Second, func(*outpostv1.Task) bool { return true })
		if got.GetState() != outpostv1.TaskState_TASK_STATE_LEASED || len(got.GetResult()) != 0 {
			t.Fatalf("task changed by a foreign agent: %v", got)
		}
	})

	t.Run("a report with a stale epoch is rejected and overwrites nothing", func(t *testing.T) {
		a := mustEnroll(t, h, "prod")
		h.Enqueue(t, &outpostv1.EnqueueTaskRequest{Id: "stale", Environment: "prod", Kind: "http", Spec: httpSpec("https://example.invalid/"), ConflictKeys: []string{"stale"}})
		var lease *outpostv1.Lease
		for _, l := range claimAll(t, a) {
			if l.GetTask().GetId() == "stale" {
				lease = l
			}
		}
		if lease == nil {
			t.Fatal("task not claimed")
		}
		if _, err := a.client.ReportResult(t.Context(), connect.NewRequest(&outpostv1.ReportResultRequest{TaskId: "stale", Epoch: lease.GetEpoch(), Outcome: outpostv1.Outcome_OUTCOME_SUCCEEDED, Result: []byte(`{"n":1}`)})); err != nil {
			t.Fatal(err)
		}
		_, err := a.client.ReportResult(t.Context(), connect.NewRequest(&outpostv1.ReportResultRequest{TaskId: "stale", Epoch: lease.GetEpoch() - 1, Outcome: outpostv1.Outcome_OUTCOME_FAILED, Error: "late"}))
		wantCode(t, err, connect.CodeAborted)
		got := h.WaitTask(t, "stale", time.Second, hubtest.Terminal)
		if got.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED || string(got.GetResult()) != `{"n":1}` {
			t.Fatalf("stale report changed the task: %v", got)
		}
	})

	t.Run("tokens with alg none or HMAC over the public key are refused", func(t *testing.T) {
		claims := jwt.MapClaims{"iss": auth.DefaultIssuer, "aud": auth.DefaultAudience, "sub": "agt_x", "env": "e", "tenant": "acme", "exp": time.Now().Add(time.Hour).Unix(), "scp": []string{auth.ScopeTasks}}
		none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
		hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte("anything"))
		for _, tok := range []string{none, hs} {
			a := newRawAgent(h)
			a.token = tok
			_, err := a.client.Claim(t.Context(), connect.NewRequest(&outpostv1.ClaimRequest{MaxTasks: 1}))
			wantCode(t, err, connect.CodeUnauthenticated)
		}
	})

	t.Run("a bearer token over 8 KiB is refused", func(t *testing.T) {
		a := newRawAgent(h)
		a.token = strings.Repeat("a", 9<<10)
		_, err := a.client.Claim(t.Context(), connect.NewRequest(&outpostv1.ClaimRequest{MaxTasks: 1}))
		wantCode(t, err, connect.CodeUnauthenticated)
	})

	t.Run("a request over 4 MiB is refused and stores nothing", func(t *testing.T) {
		big := `{"method":"POST","url":"https://example.invalid/","body":"` + strings.Repeat("x", 5<<20) + `"}`
		_, err := h.Operator.EnqueueTask(t.Context(), connect.NewRequest(&outpostv1.EnqueueTaskRequest{Id: "too-big", Environment: "prod", Kind: "http", Spec: []byte(big)}))
		wantCode(t, err, connect.CodeResourceExhausted)
		_, err = h.Operator.GetTask(t.Context(), connect.NewRequest(&outpostv1.GetTaskRequest{Id: "too-big"}))
		wantCode(t, err, connect.CodeNotFound)
	})

	t.Run("an unknown task kind is refused and stores nothing", func(t *testing.T) {
		_, err := h.Operator.EnqueueTask(t.Context(), connect.NewRequest(&outpostv1.EnqueueTaskRequest{Id: "odd-kind", Environment: "prod", Kind: "teleport", Spec: []byte(`{}`)}))
		wantCode(t, err, connect.CodeInvalidArgument)
		if !strings.Contains(err.Error(), "teleport") {
			t.Fatalf("error %q does not name the kind", err)
		}
		_, err = h.Operator.GetTask(t.Context(), connect.NewRequest(&outpostv1.GetTaskRequest{Id: "odd-kind"}))
		wantCode(t, err, connect.CodeNotFound)
	})

	t.Run("re-enqueueing the same id returns the same task", func(t *testing.T) {
		req := &outpostv1.EnqueueTaskRequest{Id: "idem", Environment: "dev", Kind: "http", Spec: httpSpec("https://example.invalid/")}
		first, err := h.Operator.EnqueueTask(t.Context(), connect.NewRequest(req))
		if err != nil || !first.Msg.GetCreated() {
			t.Fatalf("first enqueue: %v created=%v", err, first.Msg.GetCreated())
		}
		again, err := h.Operator.EnqueueTask(t.Context(), connect.NewRequest(req))
		if err != nil || again.Msg.GetCreated() || again.Msg.GetTask().GetCreatedAt().AsTime() != first.Msg.GetTask().GetCreatedAt().AsTime() {
			t.Fatalf("second enqueue: %v created=%v", err, again.Msg.GetCreated())
		}
		req.Spec = httpSpec("https://other.invalid/")
		_, err = h.Operator.EnqueueTask(t.Context(), connect.NewRequest(req))
		wantCode(t, err, connect.CodeAlreadyExists)
	})

	t.Run("an operator token of one tenant sees nothing of another", func(t *testing.T) {
		tok, err := hub.CreateAdminToken(t.Context(), h.Store, "globex", "x", 0, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		other := outpostv1connect.NewOperatorServiceClient(h.Client, h.URL, connect.WithInterceptors(hubtest.WithToken(tok)))
		_, err = other.GetTask(t.Context(), connect.NewRequest(&outpostv1.GetTaskRequest{Id: "idem"}))
		wantCode(t, err, connect.CodeNotFound)
		_, err = other.CreateBootstrapToken(t.Context(), connect.NewRequest(&outpostv1.CreateBootstrapTokenRequest{Environment: "prod"}))
		wantCode(t, err, connect.CodeNotFound)
	})
}

func claimAll(t *testing.T, a *rawAgent) []*outpostv1.Lease {
	t.Helper()
	resp, err := a.client.Claim(t.Context(), connect.NewRequest(&outpostv1.ClaimRequest{MaxTasks: 64}))
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	return resp.Msg.GetLeases()
}

func TestWakeUps(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{Hub: func(o *hub.Options) { o.Keepalive = time.Second }})
	h.CreateEnvironment(t, "prod")
	a := mustEnroll(t, h, "prod")

	t.Run("an enqueue wakes a watching agent at once", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		stream, err := a.client.Watch(ctx, connect.NewRequest(&outpostv1.WatchRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		if !stream.Receive() || stream.Msg().GetKeepalive() == nil {
			t.Fatalf("first message is not a keep-alive: %v", stream.Err())
		}
		start := time.Now()
		h.Enqueue(t, &outpostv1.EnqueueTaskRequest{Id: "wake-watch", Environment: "prod", Kind: "http", Spec: httpSpec("https://example.invalid/")})
		for stream.Receive() {
			if stream.Msg().GetWorkAvailable() != nil {
				if d := time.Since(start); d > time.Second {
					t.Fatalf("wake-up took %v", d)
				}
				return
			}
		}
		t.Fatalf("stream ended without a wake-up: %v", stream.Err())
	})

	t.Run("an enqueue ends a long poll at once", func(t *testing.T) {
		done := make(chan *outpostv1.PollResponse, 1)
		go func() {
			resp, err := a.client.Poll(t.Context(), connect.NewRequest(&outpostv1.PollRequest{Wait: durationpb.New(25 * time.Second)}))
			if err != nil {
				t.Error(err)
				done <- nil
				return
			}
			done <- resp.Msg
		}()
		time.Sleep(200 * time.Millisecond)
		h.Enqueue(t, &outpostv1.EnqueueTaskRequest{Id: "wake-poll", Environment: "prod", Kind: "http", Spec: httpSpec("https://example.invalid/")})
		select {
		case msg := <-done:
			if !msg.GetWorkAvailable() {
				t.Fatalf("poll returned without work: %v", msg)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("poll still held 5s after an enqueue")
		}
	})

	t.Run("keep-alives flow on an idle stream", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		stream, err := a.client.Watch(ctx, connect.NewRequest(&outpostv1.WatchRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		n := 0
		for n < 3 && stream.Receive() {
			if stream.Msg().GetKeepalive() != nil {
				n++
			}
		}
		if n < 3 {
			t.Fatalf("got %d keep-alives: %v", n, stream.Err())
		}
	})
}

func TestAuditAndMetrics(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{})
	h.CreateEnvironment(t, "prod")
	a := mustEnroll(t, h, "prod")
	h.Enqueue(t, &outpostv1.EnqueueTaskRequest{Id: "audited", Environment: "prod", Kind: "http", Spec: httpSpec("https://example.invalid/")})
	leases := claimAll(t, a)
	if len(leases) != 1 {
		t.Fatalf("claimed %d", len(leases))
	}
	if _, err := a.client.ReportResult(t.Context(), connect.NewRequest(&outpostv1.ReportResultRequest{TaskId: "audited", Epoch: leases[0].GetEpoch(), Outcome: outpostv1.Outcome_OUTCOME_SUCCEEDED})); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Operator.DisableAgent(t.Context(), connect.NewRequest(&outpostv1.DisableAgentRequest{AgentId: a.id})); err != nil {
		t.Fatal(err)
	}

	t.Run("the exported audit chain verifies and names every kind of change", func(t *testing.T) {
		stream, err := h.Operator.ExportAuditEvents(t.Context(), connect.NewRequest(&outpostv1.ExportAuditEventsRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		v := audit.NewVerifier(audit.Event{})
		seen := map[string]bool{}
		for stream.Receive() {
			for _, e := range stream.Msg().GetEvents() {
				ev := audit.Event{Seq: e.GetSeq(), Time: e.GetTime().AsTime(), Tenant: e.GetTenant(), Environment: e.GetEnvironment(), Actor: e.GetActor(), Action: e.GetAction(), Subject: e.GetSubject(), Details: e.GetDetails(), PrevHash: e.GetPrevHash(), Hash: e.GetHash()}
				if err := v.Add(ev); err != nil {
					t.Fatal(err)
				}
				seen[e.GetAction()] = true
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{audit.ActionTenantCreated, audit.ActionAPITokenCreated, audit.ActionEnvironmentCreated, audit.ActionBootstrapTokenCreated, audit.ActionAgentRegistered, audit.ActionTaskEnqueued, audit.ActionTaskClaimed, audit.ActionTaskCompleted, audit.ActionAgentDisabled} {
			if !seen[want] {
				t.Errorf("no %s event in the chain", want)
			}
		}
	})

	t.Run("no token or secret appears in the audit log", func(t *testing.T) {
		resp, err := h.Operator.ListAuditEvents(t.Context(), connect.NewRequest(&outpostv1.ListAuditEventsRequest{Limit: 1000}))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.Msg.GetEvents() {
			s := e.String()
			if strings.Contains(s, auth.PrefixBootstrapToken) || strings.Contains(s, auth.PrefixAPIToken) || strings.Contains(s, h.AdminToken) {
				t.Fatalf("event %d holds a token: %s", e.GetSeq(), s)
			}
		}
	})

	t.Run("metrics expose agents, queue depth, claims, completions and dispatch latency", func(t *testing.T) {
		resp, err := h.Client.Get(h.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, series := range []string{"outpost_connected_agents", "outpost_tasks_claimed_total 1", `outpost_tasks_completed_total{outcome="succeeded"} 1`, "outpost_dispatch_latency_seconds_count 1"} {
			if !bytes.Contains(body, []byte(series)) {
				t.Errorf("metrics lack %q", series)
			}
		}
	})
}

func TestTLS(t *testing.T) {
	t.Run("the hub refuses plain HTTP", func(t *testing.T) {
		h := hubtest.Start(t, hubtest.Options{})
		resp, err := http.Get("http://" + h.Addr + "/healthz")
		if err == nil {
			defer resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatal("plain HTTP was served")
			}
		}
	})
	t.Run("a client refuses a hub offering only TLS 1.1", func(t *testing.T) {
		h := hubtest.Start(t, hubtest.Options{MaxTLSVersion: tls.VersionTLS11})
		resp, err := h.Client.Get(h.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			t.Fatal("TLS 1.1 connection accepted")
		}
		var alert tls.AlertError
		if !errors.As(err, &alert) && !strings.Contains(err.Error(), "protocol version") {
			t.Fatalf("unexpected error: %v", err)
		}
	})
}

// TestUploadingAnArtifactAgainSucceeds uploads the same multi-chunk
// artifact several times: the hub, which has it after the first, answers
// each upload once the client has sent it all, so no client sees its
// stream reset under it.
func TestUploadingAnArtifactAgainSucceeds(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{})
	data := bytes.Repeat([]byte("module archive bytes "), 200_000) // 4 MiB: several chunks
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	for i := range 5 {
		up := h.Operator.UploadArtifact(t.Context())
		if err := up.Send(&outpostv1.UploadArtifactRequest{Part: &outpostv1.UploadArtifactRequest_Header{Header: &outpostv1.ArtifactHeader{Digest: digest, Size: int64(len(data))}}}); err != nil {
			t.Fatalf("upload %d: header: %v", i, err)
		}
		for off := 0; off < len(data); off += 256 << 10 {
			if err := up.Send(&outpostv1.UploadArtifactRequest{Part: &outpostv1.UploadArtifactRequest_Chunk{Chunk: data[off:min(off+256<<10, len(data))]}}); err != nil {
				t.Fatalf("upload %d: chunk at %d: %v", i, off, err)
			}
		}
		res, err := up.CloseAndReceive()
		if err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
		if res.Msg.GetDigest() != digest || res.Msg.GetSize() != int64(len(data)) {
			t.Fatalf("upload %d: stored %s (%d bytes), want %s", i, res.Msg.GetDigest(), res.Msg.GetSize(), digest)
		}
	}
}

func TestArtifactAccess(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{})
	h.CreateEnvironment(t, "prod")
	h.CreateEnvironment(t, "dev")
	prod := mustEnroll(t, h, "prod")
	dev := mustEnroll(t, h, "dev")

	up := h.Operator.UploadArtifact(t.Context())
	data := []byte("chart archive bytes")
	if err := up.Send(&outpostv1.UploadArtifactRequest{Part: &outpostv1.UploadArtifactRequest_Header{Header: &outpostv1.ArtifactHeader{}}}); err != nil {
		t.Fatal(err)
	}
	if err := up.Send(&outpostv1.UploadArtifactRequest{Part: &outpostv1.UploadArtifactRequest_Chunk{Chunk: data}}); err != nil {
		t.Fatal(err)
	}
	res, err := up.CloseAndReceive()
	if err != nil {
		t.Fatal(err)
	}
	digest := res.Msg.GetDigest()
	h.Enqueue(t, &outpostv1.EnqueueTaskRequest{Id: "with-artifact", Environment: "prod", Kind: "http", Spec: httpSpec("https://example.invalid/"), Artifacts: []string{digest}})
	h.Enqueue(t, &outpostv1.EnqueueTaskRequest{Id: "without-artifact", Environment: "prod", Kind: "http", Spec: httpSpec("https://example.invalid/")})

	download := func(a *rawAgent, taskID string) ([]byte, error) {
		stream, err := a.client.DownloadArtifact(t.Context(), connect.NewRequest(&outpostv1.DownloadArtifactRequest{Digest: digest, TaskId: taskID}))
		if err != nil {
			return nil, err
		}
		defer stream.Close()
		var out []byte
		for stream.Receive() {
			out = append(out, stream.Msg().GetChunk()...)
		}
		return out, stream.Err()
	}
	t.Run("an agent downloads an artifact its environment's task declares", func(t *testing.T) {
		got, err := download(prod, "with-artifact")
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("download = %q, %v", got, err)
		}
	})
	t.Run("an agent of another environment cannot download it", func(t *testing.T) {
		_, err := download(dev, "with-artifact")
		wantCode(t, err, connect.CodeNotFound)
	})
	t.Run("a task that does not declare the artifact does not open it", func(t *testing.T) {
		_, err := download(prod, "without-artifact")
		wantCode(t, err, connect.CodeNotFound)
	})
}

func TestAcceptedAccessTokenIsRefusedOnceExpired(t *testing.T) {
	clk := &clock{}
	h := hubtest.Start(t, hubtest.Options{Hub: func(o *hub.Options) { o.Now = clk.Now }})
	h.CreateEnvironment(t, "prod")
	a := mustEnroll(t, h, "prod")
	// Accepted, and so remembered as verified.
	for range 2 {
		if _, err := a.client.Heartbeat(t.Context(), connect.NewRequest(&outpostv1.HeartbeatRequest{})); err != nil {
			t.Fatal(err)
		}
	}
	// Past its expiry and the verifier's leeway.
	clk.Advance(auth.DefaultAccessTokenTTL + time.Minute)
	_, err := a.client.Heartbeat(t.Context(), connect.NewRequest(&outpostv1.HeartbeatRequest{}))
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = a.client.Claim(t.Context(), connect.NewRequest(&outpostv1.ClaimRequest{MaxTasks: 1}))
	wantCode(t, err, connect.CodeUnauthenticated)
}
