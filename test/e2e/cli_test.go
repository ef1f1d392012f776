package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/cli"
	"github.com/outposthq/outpost/internal/hubtest"
)

// runCLI runs the operator CLI in-process against a real hub.
func runCLI(t *testing.T, config string, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := cli.NewRootCommand(cli.Options{
		Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader(stdin), ConfigPath: config,
		Getenv:       func(string) string { return "" },
		PollInterval: 50 * time.Millisecond, MaxPollInterval: 200 * time.Millisecond,
	})
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(t.Context())
	if err != nil {
		return out.String() + errOut.String(), err
	}
	return out.String(), nil
}

func TestOperatorCLIAgainstARealHub(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{Hub: fastHub})
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, `{"rotated":true}`) }))
	defer api.Close()
	config := filepath.Join(t.TempDir(), "config.yaml")
	must := func(stdin string, args ...string) string {
		t.Helper()
		out, err := runCLI(t, config, stdin, args...)
		if err != nil {
			t.Fatalf("outpost %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	must(h.AdminToken, "login", "--hub", h.URL, "--token", "-", "--ca-file", h.CAFile)
	must("", "env", "create", "prod")
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(must("", "token", "create", "--env", "prod", "-o", "json")), &tok); err != nil || !strings.HasPrefix(tok.Token, "opb_") {
		t.Fatalf("token create: %v %q", err, tok.Token)
	}
	startAgent(t, h, agentConfig{bootstrap: tok.Token, environment: "acme/prod"})

	t.Run("task run --wait returns when the agent has run the task", func(t *testing.T) {
		out := must("", "task", "run", "--env", "prod", "--kind", "http", "--id", "via-cli",
			"--spec-json", `{"method":"POST","url":"`+api.URL+`/rotate"}`, "--wait", "-o", "json")
		if !strings.Contains(out, "TASK_STATE_SUCCEEDED") && !strings.Contains(out, `"state": "succeeded"`) && !strings.Contains(out, "SUCCEEDED") {
			t.Fatalf("task run output lacks success:\n%s", out)
		}
	})
	t.Run("agent list shows the enrolled agent as connected", func(t *testing.T) {
		out := must("", "agent", "list", "-o", "json")
		if !strings.Contains(out, `"connected": true`) && !strings.Contains(out, `"connected":true`) {
			t.Fatalf("agent list:\n%s", out)
		}
	})
	t.Run("every list names the environment as tenant/env", func(t *testing.T) {
		for _, args := range [][]string{{"env", "list"}, {"agent", "list"}, {"task", "list"}, {"task", "get", "via-cli"}} {
			out := must("", args...)
			if !strings.Contains(out, "acme/prod") {
				t.Errorf("outpost %s does not name acme/prod:\n%s", strings.Join(args, " "), out)
			}
		}
	})
	t.Run("audit verify accepts the hub's chain", func(t *testing.T) {
		out := must("", "audit", "verify")
		if !strings.Contains(strings.ToLower(out), "verified") {
			t.Fatalf("audit verify:\n%s", out)
		}
	})
	t.Run("an unknown kind is refused with a message naming it", func(t *testing.T) {
		out, err := runCLI(t, config, "", "task", "run", "--env", "prod", "--kind", "teleport", "--spec-json", `{}`)
		if err == nil || !strings.Contains(err.Error()+out, "teleport") {
			t.Fatalf("want a refusal naming the kind, got %v:\n%s", err, out)
		}
	})
}
