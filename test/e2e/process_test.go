package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
	"github.com/outposthq/outpost/internal/agent"
	"github.com/outposthq/outpost/internal/auth"
	"github.com/outposthq/outpost/internal/devcert"
	"github.com/outposthq/outpost/internal/hubtest"
	"github.com/outposthq/outpost/internal/transport"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds outpost-hub and outpost-agent once per test run.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "outpost-e2e-bin-")
		if buildErr != nil {
			return
		}
		root, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./cmd/outpost-hub", "./cmd/outpost-agent")
		cmd.Dir = filepath.Dir(strings.TrimSpace(string(root)))
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	stopCluster()
	os.Exit(code)
}

// proc is a child process whose output is kept for failure reports.
type proc struct {
	cmd *exec.Cmd
	out *syncBuffer
}

func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command(filepath.Join(binaries(t), name), args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "HTTPS_PROXY=", "HTTP_PROXY=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, out: out}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return p
}

// kill sends SIGKILL and reaps the process.
func (p *proc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

// hubProc is an outpost-hub process on a fixed port and database, so it can
// be killed and started again.
type hubProc struct {
	dir, addr, db string
	args          []string
	p             *proc
	operator      outpostv1connect.OperatorServiceClient
	caFile        string
	// token is the tenant's operator API token.
	token string
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startHubProc(t *testing.T, extra ...string) *hubProc {
	t.Helper()
	dir := t.TempDir()
	h := &hubProc{dir: dir, addr: freeAddr(t), db: filepath.Join(dir, "hub.db")}
	h.args = append([]string{"serve", "--db", h.db, "--listen", h.addr, "--dev-tls-dir", filepath.Join(dir, "tls")}, extra...)
	h.caFile = filepath.Join(dir, "tls", devcert.CAFile)
	h.start(t)
	out, err := exec.Command(filepath.Join(binaries(t), "outpost-hub"), "admin", "token", "--tenant", "acme", "--db", h.db).Output()
	if err != nil {
		t.Fatalf("admin token: %v", err)
	}
	client, err := transport.NewClient(transport.Options{CAFile: h.caFile})
	if err != nil {
		t.Fatal(err)
	}
	h.token = strings.TrimSpace(string(out))
	h.operator = outpostv1connect.NewOperatorServiceClient(client, h.url(), connect.WithInterceptors(hubtest.WithToken(h.token)))
	return h
}

func (h *hubProc) url() string { return "https://" + h.addr }

func (h *hubProc) start(t *testing.T) {
	t.Helper()
	h.p = startProc(t, "outpost-hub", h.args...)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", h.addr); err == nil {
			c.Close()
			if _, err := os.Stat(h.caFile); err == nil {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("hub did not listen on %s:\n%s", h.addr, h.p.out.String())
}

func (h *hubProc) bootstrap(t *testing.T, env string) string {
	t.Helper()
	if _, err := h.operator.CreateEnvironment(t.Context(), connect.NewRequest(&outpostv1.CreateEnvironmentRequest{Name: env})); err != nil && connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Fatal(err)
	}
	resp, err := h.operator.CreateBootstrapToken(t.Context(), connect.NewRequest(&outpostv1.CreateBootstrapTokenRequest{Environment: env}))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Msg.GetToken()
}

func (h *hubProc) startAgent(t *testing.T, identity, bootstrap string) *proc {
	t.Helper()
	return startProc(t, "outpost-agent", "--hub", h.url(), "--ca-file", h.caFile,
		"--identity-file", identity, "--bootstrap-token", bootstrap, "--concurrency", "4", "--log-level", "debug")
}

func (h *hubProc) task(t *testing.T, id string) *outpostv1.Task {
	t.Helper()
	resp, err := h.operator.GetTask(t.Context(), connect.NewRequest(&outpostv1.GetTaskRequest{Id: id}))
	if err != nil {
		return nil
	}
	return resp.Msg.GetTask()
}

func (h *hubProc) waitTask(t *testing.T, id string, timeout time.Duration, cond func(*outpostv1.Task) bool) *outpostv1.Task {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last *outpostv1.Task
	for time.Now().Before(deadline) {
		if got := h.task(t, id); got != nil {
			last = got
			if cond(got) {
				return got
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("task %s: condition not met in %v; last %v", id, timeout, last)
	return nil
}

// auditEvents calls fn for every audit event of action, oldest first.
func (h *hubProc) auditEvents(t *testing.T, action string, fn func(*outpostv1.AuditEvent)) {
	t.Helper()
	after := int64(0)
	for {
		resp, err := h.operator.ListAuditEvents(t.Context(), connect.NewRequest(&outpostv1.ListAuditEventsRequest{AfterSeq: after, Limit: 1000, Action: action}))
		if err != nil {
			t.Fatal(err)
		}
		evs := resp.Msg.GetEvents()
		if len(evs) == 0 {
			return
		}
		for _, e := range evs {
			fn(e)
		}
		after = evs[len(evs)-1].GetSeq()
	}
}

// auditActions counts the audit events of action by subject.
func (h *hubProc) auditActions(t *testing.T, action string) map[string]int {
	t.Helper()
	count := map[string]int{}
	h.auditEvents(t, action, func(e *outpostv1.AuditEvent) { count[e.GetSubject()]++ })
	return count
}

// auditTimes returns when each subject last had an audit event of action.
func (h *hubProc) auditTimes(t *testing.T, action string) map[string]time.Time {
	t.Helper()
	at := map[string]time.Time{}
	h.auditEvents(t, action, func(e *outpostv1.AuditEvent) { at[e.GetSubject()] = e.GetTime().AsTime() })
	return at
}

func (h *hubProc) verifyAudit(t *testing.T) {
	t.Helper()
	out, err := exec.Command(filepath.Join(binaries(t), "outpost-hub"), "audit", "verify", "--tenant", "acme", "--db", h.db).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("verified")) {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
}

func TestHubKilledWhileTasksAreLeased(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills processes")
	}
	api := newCountingAPI(t, 3*time.Second)
	h := startHubProc(t)
	boot := h.bootstrap(t, "prod")
	h.startAgent(t, filepath.Join(t.TempDir(), "identity.json"), boot)

	const n = 8
	for i := range n {
		req := httpTask(fmt.Sprintf("survive-%d", i), "prod", api.url(fmt.Sprintf("/survive-%d", i)), nil)
		if _, err := h.operator.EnqueueTask(t.Context(), connect.NewRequest(req)); err != nil {
			t.Fatal(err)
		}
	}
	h.waitTask(t, "survive-0", 20*time.Second, func(t *outpostv1.Task) bool { return t.GetState() == outpostv1.TaskState_TASK_STATE_LEASED })
	h.p.kill()
	time.Sleep(500 * time.Millisecond)
	h.start(t)

	for i := range n {
		got := h.waitTask(t, fmt.Sprintf("survive-%d", i), 60*time.Second, hubtest.Terminal)
		if got.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED {
			t.Fatalf("%s: %v %s", got.GetId(), got.GetState(), got.GetError())
		}
	}
	t.Run("no task was lost and none completed twice", func(t *testing.T) {
		completed := h.auditActions(t, "agent.task_completed")
		for i := range n {
			subject := fmt.Sprintf("survive-%d", i)
			if c := completed[subject]; c != 1 {
				t.Errorf("%s completed %d times", subject, c)
			}
		}
	})
	t.Run("the audit chain still verifies", func(t *testing.T) { h.verifyAudit(t) })
}

func TestAgentKilledMidTask(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills processes")
	}
	api := newCountingAPI(t, 0)
	api.blockFirst = true
	h := startHubProc(t, "--lease-duration", "3s")
	boot := h.bootstrap(t, "prod")
	firstIdentity := filepath.Join(t.TempDir(), "identity.json")
	first := h.startAgent(t, firstIdentity, boot)

	if _, err := h.operator.EnqueueTask(t.Context(), connect.NewRequest(httpTask("orphan", "prod", api.url("/orphan"), map[string]any{"timeout_seconds": 120}))); err != nil {
		t.Fatal(err)
	}
	api.waitCalls(t, "/orphan", 1, 20*time.Second)
	first.kill()
	h.startAgent(t, filepath.Join(t.TempDir(), "identity.json"), h.bootstrap(t, "prod"))

	got := h.waitTask(t, "orphan", 60*time.Second, hubtest.Terminal)
	t.Run("the lease expires and a second attempt with a higher epoch finishes the task", func(t *testing.T) {
		if got.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED || got.GetAttempt() != 2 {
			t.Fatalf("state %v attempt %d, want succeeded at attempt 2 (%s)", got.GetState(), got.GetAttempt(), got.GetError())
		}
	})
	t.Run("the killed attempt's late report is rejected", func(t *testing.T) {
		late := lateAgent(t, h, firstIdentity)
		_, err := late.ReportResult(t.Context(), connect.NewRequest(&outpostv1.ReportResultRequest{
			TaskId: "orphan", Epoch: 1, Outcome: outpostv1.Outcome_OUTCOME_FAILED, Error: "late report from a dead attempt",
		}))
		if connect.CodeOf(err) != connect.CodeAborted {
			t.Fatalf("late report: %v, want Aborted", err)
		}
		again := h.task(t, "orphan")
		if again.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED || again.GetError() != got.GetError() || !bytes.Equal(again.GetResult(), got.GetResult()) {
			t.Fatalf("late report changed the task: %v", again)
		}
	})
	t.Run("the audit chain still verifies", func(t *testing.T) { h.verifyAudit(t) })
}

// lateAgent signs in with a killed agent's identity file, as that agent
// would if it came back from a partition.
func lateAgent(t *testing.T, h *hubProc, identityFile string) outpostv1connect.AgentServiceClient {
	t.Helper()
	id, err := agent.FileIdentity{Path: identityFile}.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	client, err := transport.NewClient(transport.Options{CAFile: h.caFile})
	if err != nil {
		t.Fatal(err)
	}
	var token string
	c := outpostv1connect.NewAgentServiceClient(client, h.url(), connect.WithInterceptors(hubtest.WithTokenFunc(func() string { return token })))
	ch, err := c.Challenge(t.Context(), connect.NewRequest(&outpostv1.ChallengeRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	nonce := ch.Msg.GetNonce()
	resp, err := c.RefreshToken(t.Context(), connect.NewRequest(&outpostv1.RefreshTokenRequest{AgentId: id.AgentID, Nonce: nonce, Signature: auth.SignRefresh(id.Key, nonce, id.AgentID)}))
	if err != nil {
		t.Fatal(err)
	}
	token = resp.Msg.GetToken().GetToken()
	return c
}
