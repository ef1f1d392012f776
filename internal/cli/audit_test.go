package cli

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/outposthq/outpost/internal/audit"
)

// Ways an attacker with write access to the hub's database changes the log.
var (
	editEvent3 = func(es []audit.Event) []audit.Event {
		es[2].Subject = "ag-evil"
		return es
	}
	deleteEvent3 = func(es []audit.Event) []audit.Event { return slices.Delete(es, 2, 3) }
	deleteTail   = func(es []audit.Event) []audit.Event { return es[:3] }
	// rewriteFrom4 replaces events 4 and 5 by a consistent chain of new ones.
	rewriteFrom4 = func(es []audit.Event) []audit.Event {
		es = es[:3]
		for _, subject := range []string{"t-x", "t-y"} {
			e := audit.Event{Time: fakeNow, Tenant: fakeTenant, Actor: "ci-bot", Action: audit.ActionTaskEnqueued, Subject: subject, Details: "{}"}
			e.Seal(es[len(es)-1])
			es = append(es, e)
		}
		return es
	}
)

func TestAuditVerify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// verifyFirst verifies the intact chain once, so its head is remembered.
		verifyFirst bool
		tamper      func([]audit.Event) []audit.Event
		// fromFile verifies an export instead of the live chain.
		fromFile bool
		wantErr  error
		wantMsg  []string
	}{
		{name: "an intact chain verifies live", wantMsg: nil},
		{name: "an intact export verifies from its file", fromFile: true},
		{name: "an edited event is reported live at its sequence number", tamper: editEvent3,
			wantErr: audit.ErrChainBroken, wantMsg: []string{"event 3 (agent.registered) was modified", "breaks at event 3", `subject "ag-evil"`}},
		{name: "an edited event is reported from a file with its line", tamper: editEvent3, fromFile: true,
			wantErr: audit.ErrChainBroken, wantMsg: []string{"event 3 (agent.registered) was modified", "line 3 of"}},
		{name: "a deleted middle event is reported where the gap is", tamper: deleteEvent3,
			wantErr: audit.ErrChainBroken, wantMsg: []string{"event 4 follows event 2", "breaks at event 4"}},
		{name: "a deleted middle event is reported from a file", tamper: deleteEvent3, fromFile: true,
			wantErr: audit.ErrChainBroken, wantMsg: []string{"event 4 follows event 2"}},
		{name: "a deleted tail passes without a remembered head", tamper: deleteTail},
		{name: "a deleted tail is reported against the remembered head", verifyFirst: true, tamper: deleteTail,
			wantErr: ErrAuditTampered, wantMsg: []string{"chain ends at event 3, but event 5 was verified", "events 4 to 5 have been deleted"}},
		{name: "a deleted tail in an export is reported against the remembered head", verifyFirst: true, tamper: deleteTail, fromFile: true,
			wantErr: ErrAuditTampered, wantMsg: []string{"events 4 to 5 have been deleted"}},
		{name: "a rewritten tail is reported where it diverges from the remembered head", verifyFirst: true, tamper: rewriteFrom4,
			wantErr: ErrAuditTampered, wantMsg: []string{"event 5", "rewritten"}},
		{name: "new events after the remembered head verify", verifyFirst: true,
			tamper: func(es []audit.Event) []audit.Event {
				e := audit.Event{Time: fakeNow, Tenant: fakeTenant, Actor: "ci-bot", Action: audit.ActionAgentDisabled, Details: "{}"}
				e.Seal(es[len(es)-1])
				return append(es, e)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t).login()
			if tt.verifyFirst {
				h.mustRun("audit", "verify")
			}
			if tt.tamper != nil {
				h.hub.tamperAudit(tt.tamper)
			}
			args := []string{"audit", "verify"}
			if tt.fromFile {
				file := filepath.Join(h.dir, "audit.jsonl")
				h.mustRun("audit", "export", "--file", file)
				args = append(args, "--file", file)
			}
			r := h.run(args...)
			if tt.wantErr == nil {
				if r.err != nil {
					t.Fatalf("verify: %v", r.err)
				}
				if !strings.Contains(r.stdout, "The audit chain is intact") {
					t.Errorf("stdout does not say the chain is intact:\n%s", r.stdout)
				}
				return
			}
			if !errors.Is(r.err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", r.err, tt.wantErr)
			}
			assertErrorContains(t, r.err, tt.wantMsg...)
			if ExitCode(r.err) == ExitOK {
				t.Error("a broken chain exits 0")
			}
		})
	}
}

func TestAuditVerifyRemembersHead(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	r := h.mustRun("audit", "verify")
	path := filepath.Join(filepath.Dir(h.configPath), auditHeadsFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("state file mode = %04o, want 0600", st.Mode().Perm())
	}
	head, err := (&app{opts: Options{ConfigPath: h.configPath, Getenv: func(string) string { return "" }}}).loadAuditHead(h.url, fakeTenant)
	if err != nil || head == nil {
		t.Fatalf("remembered head = %v, %v", head, err)
	}
	if head.Seq != 5 || !strings.Contains(r.stdout, head.Hash) {
		t.Errorf("remembered %+v; verify printed:\n%s", head, r.stdout)
	}
	second := h.mustRun("audit", "verify")
	if !strings.Contains(second.stdout, "PREVIOUS HEAD:  event 5") {
		t.Errorf("a second verification does not report the head it checked:\n%s", second.stdout)
	}
}

func TestAuditExport(t *testing.T) {
	t.Parallel()
	t.Run("export writes one JSON line per event to stdout", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t).login()
		lines := strings.Split(strings.TrimSpace(h.mustRun("audit", "export", "--after", "2").stdout), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], `{"seq":"3"`) {
			t.Errorf("export --after 2 printed %d lines:\n%s", len(lines), strings.Join(lines, "\n"))
		}
	})
	t.Run("export to a file writes it 0600", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t).login()
		file := filepath.Join(h.dir, "audit.jsonl")
		r := h.mustRun("audit", "export", "--file", file)
		st, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("export mode = %04o, want 0600", st.Mode().Perm())
		}
		if !strings.Contains(r.stderr, "Exported 5 events") {
			t.Errorf("stderr = %q", r.stderr)
		}
	})
	t.Run("an export verifies without login, without a remembered head", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t).login()
		file := filepath.Join(h.dir, "audit.jsonl")
		h.mustRun("audit", "export", "--file", file)
		h.configPath = filepath.Join(h.dir, "elsewhere", "config.yaml")
		r := h.mustRun("audit", "verify", "--file", file)
		if !strings.Contains(r.stdout, "5 events verified") || !strings.Contains(r.stderr, "not logged in") {
			t.Errorf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
		}
	})
	t.Run("an export split with --after verifies once appended together", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t).login()
		first := h.mustRun("audit", "export", "--after", "0").stdout
		rest := h.mustRun("audit", "export", "--after", "5").stdout
		h.hub.mu.Lock()
		h.hub.appendEvent(fakeNow, "ci-bot", audit.ActionTaskEnqueued, "prod", "t-9")
		h.hub.mu.Unlock()
		rest += h.mustRun("audit", "export", "--after", "5").stdout
		file := filepath.Join(h.dir, "audit.jsonl")
		if err := os.WriteFile(file, []byte(first+rest), 0o600); err != nil {
			t.Fatal(err)
		}
		if r := h.mustRun("audit", "verify", "--file", file); !strings.Contains(r.stdout, "6 events verified") {
			t.Errorf("verify printed:\n%s", r.stdout)
		}
	})
}
