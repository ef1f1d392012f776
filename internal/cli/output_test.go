package cli

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
)

// TestOutputFormats runs every command once per output format: the table
// against a golden file, JSON and YAML as documents holding the same data.
func TestOutputFormats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		golden string
		args   func(h *harness) []string
		// setup runs after login, before the command.
		setup   func(h *harness)
		noLogin bool
		// inJSON must appear in the JSON output.
		inJSON string
	}{
		{golden: "login", noLogin: true, inJSON: `"tokenName": "ci-bot"`,
			args: func(h *harness) []string {
				return []string{"login", "--hub", h.url, "--token", fakeToken, "--ca-file", h.caFile}
			}},
		{golden: "env_list", args: fixed("env", "list"), inJSON: `"name": "staging"`},
		{golden: "env_create", args: fixed("env", "create", "qa"), inJSON: `"name": "qa"`},
		{golden: "token_create", args: fixed("token", "create", "--env", "prod", "--ttl", "1h"), inJSON: `"token": "obt_0123456789abcdef"`},
		{golden: "agent_list", args: fixed("agent", "list", "--env", "prod"), inJSON: `"hostname": "node-b"`},
		{golden: "agent_disable", args: fixed("agent", "disable", "ag-1"), inJSON: `"disabled": true`},
		{golden: "task_run", args: fixed("task", "run", "--env", "prod", "--kind", "http", "--id", "t-new",
			"--spec-json", `{"url": "https://internal.example/ping"}`, "--conflict-key", "http/ping", "--timeout", "10m"),
			inJSON: `"created": true`},
		{golden: "task_run_wait", args: fixed("task", "run", "--env", "prod", "--kind", "http", "--id", "t-new", "--spec-json", `{}`, "--wait"),
			setup: func(h *harness) {
				h.hub.scriptTask("t-new", v1.TaskState_TASK_STATE_LEASED, v1.TaskState_TASK_STATE_SUCCEEDED)
			}, inJSON: `"state": "TASK_STATE_SUCCEEDED"`},
		{golden: "task_get", args: fixed("task", "get", "t-1"), inJSON: `"result": "eyJzdGF0dXMiOjIwMH0="`},
		{golden: "task_get_failed", args: fixed("task", "get", "t-2"), inJSON: `"error": "apply: forbidden"`},
		{golden: "task_list", args: fixed("task", "list"), inJSON: `"id": "t-3"`},
		{golden: "task_list_page", args: fixed("task", "list", "--limit", "2"), inJSON: `"nextPageToken": "2"`},
		{golden: "task_cancel", args: fixed("task", "cancel", "t-3"), inJSON: `"state": "TASK_STATE_CANCELLED"`},
		{golden: "task_wait", args: fixed("task", "wait", "t-1"), inJSON: `"state": "TASK_STATE_SUCCEEDED"`},
		{golden: "audit_list", args: fixed("audit", "list", "--after", "1", "--limit", "3"), inJSON: `"seq": "4"`},
		{golden: "audit_verify", args: fixed("audit", "verify"), inJSON: `"headSeq": 5`},
	}
	for _, tt := range tests {
		for _, f := range []format{formatTable, formatJSON, formatYAML} {
			t.Run(strings.ReplaceAll(tt.golden, "_", " ")+" prints "+string(f), func(t *testing.T) {
				t.Parallel()
				h := newHarness(t)
				if !tt.noLogin {
					h.login()
				}
				if tt.setup != nil {
					tt.setup(h)
				}
				r := h.mustRun(append(tt.args(h), "-o", string(f))...)
				switch f {
				case formatTable:
					golden(t, tt.golden, h.normalize("$ outpost "+strings.Join(tt.args(h), " ")+"\n"+r.stdout+"--- stderr ---\n"+r.stderr))
				case formatJSON:
					if !json.Valid([]byte(r.stdout)) {
						t.Fatalf("-o json printed invalid JSON:\n%s", r.stdout)
					}
					if !strings.Contains(r.stdout, tt.inJSON) {
						t.Errorf("-o json output lacks %s:\n%s", tt.inJSON, r.stdout)
					}
				case formatYAML:
					// The same command's JSON is the reference for its YAML.
					h2 := newHarness(t)
					if !tt.noLogin {
						h2.login()
					}
					if tt.setup != nil {
						tt.setup(h2)
					}
					js := h2.mustRun(append(tt.args(h2), "-o", "json")...).stdout
					asJSON, err := yaml.YAMLToJSON([]byte(r.stdout))
					if err != nil {
						t.Fatalf("-o yaml printed invalid YAML: %v\n%s", err, r.stdout)
					}
					if !sameJSON(t, asJSON, []byte(h2.normalize(js)), h, h2) {
						t.Errorf("-o yaml and -o json differ:\n%s\n---\n%s", r.stdout, js)
					}
				}
			})
		}
	}
}

func fixed(args ...string) func(*harness) []string {
	return func(*harness) []string { return args }
}

// sameJSON compares two documents after normalizing each harness's URL.
func sameJSON(t *testing.T, a, b []byte, ha, hb *harness) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal([]byte(ha.normalize(string(a))), &va); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(hb.normalize(string(b))), &vb); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(va, vb)
}

func TestRelativeTimes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		d    time.Duration
		want string
	}{
		{"a moment ago reads as just now", -300 * time.Millisecond, "just now"},
		{"seconds in the past read in seconds", -45 * time.Second, "45s ago"},
		{"minutes in the past drop the seconds", -5*time.Minute - 10*time.Second, "5m ago"},
		{"hours keep their minutes", -2*time.Hour - 15*time.Minute, "2h15m ago"},
		{"whole hours in the future read in hours", 2 * time.Hour, "in 2h"},
		{"days keep their hours", -(3*24 + 4) * time.Hour, "3d4h ago"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := relative(fakeNow, fakeNow.Add(tt.d)); got != tt.want {
				t.Errorf("relative(%v) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
}
