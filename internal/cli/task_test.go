package cli

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
)

func TestTaskRunUploadsArtifacts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		size       int
		wantChunks []int
	}{
		{"a file of two and a half MiB goes up in 1 MiB chunks", 5 << 19, []int{1 << 20, 1 << 20, 1 << 19}},
		{"a file of exactly one MiB goes up in one chunk", 1 << 20, []int{1 << 20}},
		{"an empty file goes up as a header alone", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t).login()
			content := make([]byte, tt.size)
			if _, err := rand.Read(content); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(h.dir, "chart.tgz")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(content)
			want := "sha256:" + hex.EncodeToString(sum[:])

			h.mustRun("task", "run", "--env", "prod", "--kind", "helm", "--id", "t-art", "--spec-json", `{"chart":"web"}`, "--artifact", path)

			h.hub.mu.Lock()
			defer h.hub.mu.Unlock()
			if !slices.Equal(h.hub.chunks, tt.wantChunks) {
				t.Errorf("chunk sizes = %v, want %v", h.hub.chunks, tt.wantChunks)
			}
			if len(h.hub.headers) != 1 || h.hub.headers[0].GetDigest() != want || h.hub.headers[0].GetSize() != int64(tt.size) {
				t.Errorf("headers = %v, want one with %s and size %d", h.hub.headers, want, tt.size)
			}
			task, _ := h.hub.task("t-art")
			if !slices.Equal(task.GetArtifacts(), []string{want}) {
				t.Errorf("task artifacts = %v, want [%s]", task.GetArtifacts(), want)
			}
		})
	}
}

func TestTaskRunInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		stdin    string
		wantSpec string
		wantErr  string
	}{
		{name: "the spec is read from stdin with --spec -", args: []string{"--spec", "-"}, stdin: `{"a":1}`, wantSpec: `{"a":1}`},
		{name: "a spec that is not JSON is refused", args: []string{"--spec-json", "{nope"}, wantErr: "not valid JSON"},
		{name: "both --spec and --spec-json are refused", args: []string{"--spec", "-", "--spec-json", "{}"}, wantErr: "exactly one of --spec"},
		{name: "a missing spec is refused", args: nil, wantErr: "exactly one of --spec"},
		{name: "a missing artifact file is named", args: []string{"--spec-json", "{}", "--artifact", "/nonexistent/x.tgz"}, wantErr: "/nonexistent/x.tgz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t).login()
			h.stdin = tt.stdin
			r := h.run(append([]string{"task", "run", "--env", "prod", "--kind", "http", "--id", "t-in"}, tt.args...)...)
			if tt.wantErr != "" {
				assertErrorContains(t, r.err, tt.wantErr)
				return
			}
			if r.err != nil {
				t.Fatal(r.err)
			}
			task, _ := h.hub.snapshot("t-in")
			if string(task.GetSpec()) != tt.wantSpec {
				t.Errorf("spec = %s, want %s", task.GetSpec(), tt.wantSpec)
			}
		})
	}
	t.Run("without --id each run gets its own random id", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t).login()
		h.mustRun("task", "run", "--env", "prod", "--kind", "http", "--spec-json", "{}")
		h.mustRun("task", "run", "--env", "prod", "--kind", "http", "--spec-json", "{}")
		if _, n := h.hub.snapshot(""); n != 5 {
			t.Errorf("hub has %d tasks, want 5 (3 seeded + 2 new)", n)
		}
	})
	t.Run("running again with the same id queues nothing and says so", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t).login()
		r := h.mustRun("task", "run", "--env", "prod", "--kind", "http", "--spec-json", "{}", "--id", "t-1")
		if !strings.Contains(r.stderr, "already existed") {
			t.Errorf("stderr = %q, want a note that the task already existed", r.stderr)
		}
	})
}

func TestTaskWaitExitCodes(t *testing.T) {
	t.Parallel()
	const (
		queued    = v1.TaskState_TASK_STATE_QUEUED
		leased    = v1.TaskState_TASK_STATE_LEASED
		succeeded = v1.TaskState_TASK_STATE_SUCCEEDED
		failed    = v1.TaskState_TASK_STATE_FAILED
		cancelled = v1.TaskState_TASK_STATE_CANCELLED
	)
	tests := []struct {
		name      string
		states    []v1.TaskState
		args      []string
		wantCode  int
		wantErr   error
		wantState string
	}{
		{"a task that succeeds exits 0", []v1.TaskState{queued, leased, leased, succeeded}, nil, ExitOK, nil, "succeeded"},
		{"a task that fails exits 1", []v1.TaskState{leased, failed}, nil, ExitFailure, ErrTaskFailed, "failed"},
		{"a cancelled task exits 1", []v1.TaskState{leased, cancelled}, nil, ExitFailure, ErrTaskCancelled, "cancelled"},
		{"a task still running at the timeout exits 2", []v1.TaskState{leased}, []string{"--timeout", "50ms"}, ExitTimeout, ErrWaitTimeout, "leased"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t).login()
			h.hub.scriptTask("t-3", tt.states...)
			r := h.run(append([]string{"task", "wait", "t-3"}, tt.args...)...)
			if got := ExitCode(r.err); got != tt.wantCode {
				t.Errorf("exit code = %d (err %v), want %d", got, r.err, tt.wantCode)
			}
			if tt.wantErr != nil && !errors.Is(r.err, tt.wantErr) {
				t.Errorf("err = %v, want %v", r.err, tt.wantErr)
			}
			if !strings.Contains(r.stdout, "STATE:        "+tt.wantState) {
				t.Errorf("the final task is not printed with state %s:\n%s", tt.wantState, r.stdout)
			}
		})
	}
	t.Run("waiting for a task that does not exist fails with the hub's message", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t).login()
		r := h.run("task", "wait", "nope")
		assertErrorContains(t, r.err, `task "nope" not found`)
		if got := ExitCode(r.err); got != ExitFailure {
			t.Errorf("exit code = %d, want 1", got)
		}
	})
	t.Run("task run --wait exits 1 when the task fails", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t).login()
		h.hub.scriptTask("t-new", leased, failed)
		r := h.run("task", "run", "--env", "prod", "--kind", "http", "--spec-json", "{}", "--id", "t-new", "--wait")
		if !errors.Is(r.err, ErrTaskFailed) || ExitCode(r.err) != ExitFailure {
			t.Errorf("err = %v (exit %d), want ErrTaskFailed and exit 1", r.err, ExitCode(r.err))
		}
		assertErrorContains(t, r.err, "exit status 1")
	})
}

func TestTaskListPaging(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		wantIDs []string
	}{
		{"--all follows every page", []string{"--limit", "1", "--all"}, []string{"t-3", "t-2", "t-1"}},
		{"--page-token continues where a page ended", []string{"--limit", "1", "--page-token", "1"}, []string{"t-2"}},
		{"--state filters by state", []string{"--state", "FAILED"}, []string{"t-2"}},
		{"--env filters by environment", []string{"--env", "prod", "--all"}, []string{"t-2", "t-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t).login()
			r := h.mustRun(append([]string{"task", "list"}, tt.args...)...)
			var ids []string
			for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n")[1:] {
				ids = append(ids, strings.Fields(line)[0])
			}
			if !slices.Equal(ids, tt.wantIDs) {
				t.Errorf("listed %v, want %v\n%s", ids, tt.wantIDs, r.stdout)
			}
		})
	}
	t.Run("an unknown state is refused with the valid ones", func(t *testing.T) {
		t.Parallel()
		assertErrorContains(t, newHarness(t).login().run("task", "list", "--state", "done").err, "queued, leased, succeeded, failed or cancelled")
	})
}
