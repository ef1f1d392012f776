package agentcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/agent"
	"github.com/outposthq/outpost/internal/hubtest"
	"github.com/outposthq/outpost/internal/kube/kubetest"
	"github.com/outposthq/outpost/internal/taskspec"
)

var kenv *kubetest.Env

func TestMain(m *testing.M) { kubetest.Main(m, &kenv) }

// syncBuffer collects the agent's log while the test reads it.
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

// process is one run of `outpost-agent args...`, in-process.
type process struct {
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// isolate keeps the test's own environment (a developer's KUBECONFIG, a
// CI pod's service account variables) out of the agent under test.
func isolate(t *testing.T) {
	t.Helper()
	for _, k := range []string{"KUBECONFIG", "OUTPOST_KUBECONFIG", "OUTPOST_NAMESPACE", "KUBERNETES_SERVICE_HOST",
		"OUTPOST_IDENTITY_FILE", "OUTPOST_IDENTITY_SECRET", "OUTPOST_BOOTSTRAP_TOKEN", "OUTPOST_HUB"} {
		t.Setenv(k, "")
	}
	t.Setenv("XDG_STATE_HOME", t.TempDir())
}

func startAgent(t *testing.T, args ...string) *process {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &process{logs: &syncBuffer{}, cancel: cancel, done: make(chan struct{})}
	cmd := NewRootCommand(&bytes.Buffer{}, p.logs)
	cmd.SetArgs(append(args, "--log-level", "debug"))
	go func() {
		defer close(p.done)
		p.err = cmd.ExecuteContext(ctx)
	}()
	t.Cleanup(p.stop)
	return p
}

// waitStarted waits until the agent has an identity and a token.
func (p *process) waitStarted(t *testing.T) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(p.logs.String(), "agent started") {
		select {
		case <-p.done:
			t.Fatalf("the agent exited before it started: %v\n%s", p.err, p.logs)
		case <-deadline:
			t.Fatalf("the agent did not start within 30s:\n%s", p.logs)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (p *process) stop() {
	p.cancel()
	<-p.done
}

func agentIDs(t *testing.T, h *hubtest.Hub, env string) []string {
	t.Helper()
	res, err := h.Operator.ListAgents(t.Context(), connect.NewRequest(&outpostv1.ListAgentsRequest{Environment: env}))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range res.Msg.GetAgents() {
		ids = append(ids, a.GetId())
	}
	return ids
}

// runConfigMapTask applies a one-ConfigMap bundle through the agent and
// fails the test unless the ConfigMap then exists.
func runConfigMapTask(t *testing.T, h *hubtest.Hub, id, ns, name string) {
	t.Helper()
	spec, err := json.Marshal(taskspec.Manifests{
		Release:   name,
		Namespace: ns,
		Bundle:    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n  greeting: hello\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	h.Enqueue(t, &outpostv1.EnqueueTaskRequest{
		Id: id, Environment: "prod", Kind: taskspec.KindManifests, Spec: spec,
		ConflictKeys: []string{"manifests/" + name},
	})
	task := h.WaitTask(t, id, 30*time.Second, hubtest.Terminal)
	if task.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("task %s ended %s: %s", id, task.GetState(), task.GetError())
	}
	cm, err := kenv.Client.CoreV1().ConfigMaps(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the manifests task reported success but the ConfigMap is not there: %v", err)
	}
	if cm.Labels["app.kubernetes.io/managed-by"] != "outpost" {
		t.Errorf("ConfigMap labels = %v, want Outpost's ownership", cm.Labels)
	}
}

func TestAgentInAClusterKeepsItsIdentityInASecret(t *testing.T) {
	isolate(t)
	h := hubtest.Start(t, hubtest.Options{})
	boot := h.CreateEnvironment(t, "prod")
	self := kenv.Namespace(t, "outpost")
	target := kenv.Namespace(t, "app")
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := kenv.AgentConfig(t, kubetest.Agent{Name: "agentcmd-agent", Namespace: self, Targets: []string{target}})
	if err := kubetest.WriteKubeconfig(kubeconfig, cfg); err != nil {
		t.Fatal(err)
	}
	args := []string{"--hub", h.URL, "--ca-file", h.CAFile, "--environment", "acme/prod",
		"--kubeconfig", kubeconfig, "--namespace", self}
	secrets := kenv.Client.CoreV1().Secrets(self)

	first := startAgent(t, append(args, "--bootstrap-token", boot)...)
	first.waitStarted(t)
	sec, err := secrets.Get(t.Context(), agent.DefaultIdentitySecret, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("no identity Secret after enrollment: %v\n%s", err, first.logs)
	}
	enrolled := string(sec.Data["agent-id"])
	if !strings.Contains(first.logs.String(), "msg=enrolled") {
		t.Fatalf("the first run did not log its enrollment:\n%s", first.logs)
	}
	if ids := agentIDs(t, h, "prod"); len(ids) != 1 || ids[0] != enrolled {
		t.Fatalf("hub agents = %v, want the one in the Secret, %s", ids, enrolled)
	}
	if matches, _ := filepath.Glob(filepath.Join(os.Getenv("XDG_STATE_HOME"), "outpost", "*")); len(matches) > 0 {
		t.Errorf("the agent wrote an identity file as well: %v", matches)
	}
	runConfigMapTask(t, h, "t-before-restart", target, "web")
	seed := string(sec.Data["ed25519-seed"])
	if strings.Contains(first.logs.String(), seed) {
		t.Error("the agent logged its private key")
	}
	first.stop()
	if first.err != nil {
		t.Fatalf("the agent stopped with %v", first.err)
	}

	// The bootstrap token is spent: enrolling again would fail.
	second := startAgent(t, append(args, "--bootstrap-token", boot)...)
	second.waitStarted(t)
	if strings.Contains(second.logs.String(), "msg=enrolled") {
		t.Errorf("the restarted agent enrolled again:\n%s", second.logs)
	}
	if ids := agentIDs(t, h, "prod"); len(ids) != 1 || ids[0] != enrolled {
		t.Fatalf("hub agents after restart = %v, want still only %s", ids, enrolled)
	}
	runConfigMapTask(t, h, "t-after-restart", target, "api")
	second.stop()

	if err := secrets.Delete(t.Context(), agent.DefaultIdentitySecret, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	third := startAgent(t, append(args, "--bootstrap-token", h.BootstrapToken(t, "prod"))...)
	third.waitStarted(t)
	sec, err = secrets.Get(t.Context(), agent.DefaultIdentitySecret, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("no identity Secret after enrolling again: %v", err)
	}
	if again := string(sec.Data["agent-id"]); again == enrolled || len(agentIDs(t, h, "prod")) != 2 {
		t.Errorf("after deleting the Secret the agent is %s (was %s) and the hub has %v; want a new enrollment", again, enrolled, agentIDs(t, h, "prod"))
	}
}

// startedAs returns the agent id the process logged when it started, ""
// before that.
func (p *process) startedAs() string {
	for line := range strings.Lines(p.logs.String()) {
		if !strings.Contains(line, `msg="agent started"`) {
			continue
		}
		for field := range strings.FieldsSeq(line) {
			if id, ok := strings.CutPrefix(field, "agent="); ok {
				return id
			}
		}
	}
	return ""
}

func TestReplicasRacingToEnrollEndOnOneIdentity(t *testing.T) {
	isolate(t)
	h := hubtest.Start(t, hubtest.Options{})
	boot := h.CreateEnvironment(t, "prod")
	self := kenv.Namespace(t, "outpost")
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := kenv.AgentConfig(t, kubetest.Agent{Name: "racing-agent", Namespace: self})
	if err := kubetest.WriteKubeconfig(kubeconfig, cfg); err != nil {
		t.Fatal(err)
	}
	// Two pods of one Deployment: the same token, the same Secret.
	args := []string{"--hub", h.URL, "--ca-file", h.CAFile, "--environment", "acme/prod",
		"--kubeconfig", kubeconfig, "--namespace", self, "--bootstrap-token", boot}
	replicas := []*process{startAgent(t, args...), startAgent(t, args...)}
	deadline := time.After(30 * time.Second)
	for i, p := range replicas {
		for p.startedAs() == "" {
			select {
			case <-p.done:
				// It lost at enrollment; Kubernetes would restart the pod.
				t.Logf("replica %d exited: %v", i, p.err)
				p = startAgent(t, args...)
				replicas[i] = p
			case <-deadline:
				t.Fatalf("replica %d did not start:\n%s", i, p.logs)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	a, b := replicas[0].startedAs(), replicas[1].startedAs()
	ids := agentIDs(t, h, "prod")
	if a != b || len(ids) != 1 || ids[0] != a {
		t.Fatalf("replicas run as %s and %s, hub has %v; want one shared identity", a, b, ids)
	}
	sec, err := kenv.Client.CoreV1().Secrets(self).Get(t.Context(), agent.DefaultIdentitySecret, metav1.GetOptions{})
	if err != nil || string(sec.Data["agent-id"]) != a {
		t.Fatalf("identity Secret holds %q (%v), want %s", sec.Data["agent-id"], err, a)
	}
}

func TestAgentWithoutAClusterKeepsItsIdentityInAFile(t *testing.T) {
	isolate(t)
	h := hubtest.Start(t, hubtest.Options{})
	boot := h.CreateEnvironment(t, "prod")
	identity := filepath.Join(t.TempDir(), "identity.json")
	p := startAgent(t, "--hub", h.URL, "--ca-file", h.CAFile, "--bootstrap-token", boot, "--identity-file", identity)
	p.waitStarted(t)
	id, err := agent.FileIdentity{Path: identity}.Load(t.Context())
	if err != nil {
		t.Fatalf("no identity file: %v", err)
	}
	if ids := agentIDs(t, h, "prod"); len(ids) != 1 || ids[0] != id.AgentID {
		t.Errorf("hub agents = %v, want %s from the file", ids, id.AgentID)
	}
	if !strings.Contains(p.logs.String(), "manifests, helm and secret tasks are not available") {
		t.Errorf("the agent does not say that manifests tasks need a cluster:\n%s", p.logs)
	}
}

func TestAgentFlagsAreChecked(t *testing.T) {
	isolate(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := kubetest.WriteKubeconfig(kubeconfig, kenv.Config); err != nil {
		t.Fatal(err)
	}
	base := []string{"--hub", "https://hub.invalid"}
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"deny rules without a cluster are refused", []string{"--deny-kind", "Secret"}, "need a cluster"},
		{"an identity Secret without a cluster is refused", []string{"--identity-secret", "my-identity"}, "need a cluster"},
		{"a malformed deny rule is named", []string{"--kubeconfig", kubeconfig, "--deny-kind", "not a kind"}, "--deny-kind"},
		{"an invalid identity Secret name is refused", []string{"--kubeconfig", kubeconfig, "--identity-secret", "Bad_Name"}, "--identity-secret"},
		{"an environment key Secret without a cluster is refused", []string{"--environment-key-secret", "my-key"}, "need a cluster"},
		{"an invalid environment key Secret name is refused", []string{"--kubeconfig", kubeconfig, "--environment-key-secret", "Bad_Name"}, "--environment-key-secret"},
		{"one Secret for the identity and the environment key is refused", []string{"--kubeconfig", kubeconfig, "--environment-key-secret", "outpost-agent-identity", "--identity-secret", "outpost-agent-identity"}, "different Secrets"},
		{"an invalid namespace is refused", []string{"--kubeconfig", kubeconfig, "--namespace", "Bad_NS"}, "Bad_NS"},
		{"a missing kubeconfig is named", []string{"--kubeconfig", "/nonexistent/kubeconfig"}, "/nonexistent/kubeconfig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := NewRootCommand(&bytes.Buffer{}, &bytes.Buffer{})
			cmd.SetArgs(append(base, tt.args...))
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			err := cmd.ExecuteContext(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one naming %q", err, tt.wantErr)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatal("the agent ran instead of refusing its flags")
			}
		})
	}
}
