package agentcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/agent"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/hubtest"
	"github.com/outposthq/outpost/internal/kube/kubetest"
	"github.com/outposthq/outpost/internal/redact"
	"github.com/outposthq/outpost/internal/taskspec"
)

const (
	// leakedSecret is what leakyExecutor resolves, as a vault reference would.
	leakedSecret = "agentcmd-resolved-7d41c9e2" //nolint:gosec // a test fixture
	// leakedJWT is an access token an internal API might echo back.
	leakedJWT = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJlLWJ5dGVz" //nolint:gosec // a test fixture
)

// leakyExecutor stands in for an executor that resolves a secret,
// registers it as the contract asks, and then carelessly logs it and
// returns it in its error.
type leakyExecutor struct{ log *slog.Logger }

func (e leakyExecutor) Execute(_ context.Context, t executor.Task) (json.RawMessage, error) {
	t.Redact.AddSecret(leakedSecret)
	err := fmt.Errorf("call failed: 401 with token %s, server said Bearer %s", leakedSecret, leakedJWT)
	e.log.Info("resolved "+leakedSecret, "value", leakedSecret, "err", err,
		slog.Group("request", "authorization", "Bearer "+leakedJWT))
	e.log.With("bound", leakedSecret).Warn("calling")
	return nil, executor.Terminal(err)
}

func TestAgentRedactsWhatExecutorsLogAndReport(t *testing.T) {
	isolate(t)
	for _, format := range []struct {
		name string
		json bool
	}{{"text", false}, {"JSON", true}} {
		t.Run("a secret an executor registered is redacted from its "+format.name+" logs and its error", func(t *testing.T) {
			h := hubtest.Start(t, hubtest.Options{})
			boot := h.CreateEnvironment(t, "prod")
			logs := &syncBuffer{}
			proc := redact.New()
			log := newLogger(logs, slog.LevelDebug, format.json, proc)
			a, err := agent.New(agent.Options{
				HubURL:         h.URL,
				CAFile:         h.CAFile,
				Identity:       agent.FileIdentity{Path: filepath.Join(t.TempDir(), "identity.json")},
				BootstrapToken: boot,
				Executors:      map[string]executor.Executor{taskspec.KindHTTP: leakyExecutor{log: log}},
				NewRedactor:    attemptRedactors(proc),
				Logger:         log,
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- a.Start(ctx) }()
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("agent: %v", err)
				}
			})

			task := runHTTPTask(t, h, "t-leaky", "https://unused.invalid/", nil)
			if task.GetState() != outpostv1.TaskState_TASK_STATE_FAILED {
				t.Fatalf("task ended %s: %s", task.GetState(), task.GetError())
			}
			// Logged after the attempt ended: the process redactor still knows.
			log.Info("after the attempt", "value", leakedSecret)

			for what, text := range map[string]string{"the reported error": task.GetError(), "the log": logs.String()} {
				if !strings.Contains(text, redact.Marker) {
					t.Errorf("%s has no %s:\n%s", what, redact.Marker, text)
				}
				for _, leak := range []string{leakedSecret, leakedJWT} {
					if strings.Contains(text, leak) {
						t.Errorf("%s holds %q:\n%s", what, leak, text)
					}
				}
			}
			if !strings.Contains(logs.String(), "after the attempt") {
				t.Errorf("the log misses the line written after the attempt:\n%s", logs)
			}
		})
	}
}

func TestAgentCommandLogsThroughTheProcessRedactor(t *testing.T) {
	isolate(t)
	h := hubtest.Start(t, hubtest.Options{})
	boot := h.CreateEnvironment(t, "prod")
	self := kenv.Namespace(t, "outpost")
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := kubetest.WriteKubeconfig(kubeconfig, kenv.AgentConfig(t, kubetest.Agent{Name: "agentcmd-redact-agent", Namespace: self})); err != nil {
		t.Fatal(err)
	}
	// The agent logs the identity file it was asked to use; a path that
	// spells the bootstrap token shows whether its log is redacted.
	identity := filepath.Join(t.TempDir(), boot+".json")
	p := startAgent(t, "--hub", h.URL, "--ca-file", h.CAFile, "--bootstrap-token", boot,
		"--kubeconfig", kubeconfig, "--namespace", self, "--identity-file", identity, "--no-reconcile")
	p.waitStarted(t)
	logs := p.logs.String()
	if !strings.Contains(logs, "identity_file="+filepath.Dir(identity)+"/"+redact.Marker+".json") {
		t.Errorf("the log does not show the identity file with the token redacted:\n%s", logs)
	}
	if strings.Contains(logs, boot) {
		t.Errorf("the agent logged its bootstrap token:\n%s", logs)
	}
}
