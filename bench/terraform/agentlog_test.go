package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestReadAgentLogSpansTheExecutorsPhasesOfOurTasks(t *testing.T) {
	log := `time=2026-12-02T03:16:09.500Z level=INFO msg="terraform phase" task=tf-000 workspace=tf-mod-000 action=apply phase=init elapsed=500ms ok=true
time=2026-12-02T03:16:10.000Z level=INFO msg="terraform phase" task=tf-000 workspace=tf-mod-000 action=apply phase=plan elapsed=400ms ok=true
time=2026-12-02T03:16:10.100Z level=INFO msg="terraform phase" task=other workspace=x action=apply phase=plan elapsed=9s ok=true
time=2026-12-02T03:16:10.300Z level=INFO msg="terraform phase" task=tf-000 workspace=tf-mod-000 action=apply phase=apply elapsed=250ms ok=true
time=2026-12-02T03:16:10.310Z level=INFO msg=reported task=tf-000 kind=terraform epoch=1 outcome=OUTCOME_SUCCEEDED error=""
time=2026-12-02T03:16:10.320Z level=INFO msg=reported task=other kind=terraform epoch=1 outcome=OUTCOME_SUCCEEDED error=""
time=2026-12-02T03:16:10.400Z level=INFO msg=reported task=tf-001 kind=terraform epoch=1 outcome=OUTCOME_FAILED error="terraform: init: tofu: task=tf-000 phase=apply elapsed=1h"
`
	const earlier = "an earlier line msg=reported task=tf-000\n"
	path := filepath.Join(t.TempDir(), "agent.log")
	if err := os.WriteFile(path, []byte(earlier+log), 0o600); err != nil {
		t.Fatal(err)
	}
	records, reported, err := readAgentLog(path, int64(len(earlier)), map[string]bool{"tf-000": true, "tf-001": true})
	if err != nil {
		t.Fatal(err)
	}
	if reported != 2 {
		t.Errorf("reported = %d, want 2 (both of our tasks, neither the other task nor the line before the offset)", reported)
	}
	r := records["tf-000"]
	if r == nil || len(records) != 1 {
		t.Fatalf("records = %v, want one for tf-000", records)
	}
	if got := r.cli(); got != 1300*time.Millisecond {
		t.Errorf("cli() = %v, want 1.3s from the start of init to the end of apply", got)
	}
	if r.phases["init"] != 500*time.Millisecond || r.phases["apply"] != 250*time.Millisecond || len(r.phases) != 3 {
		t.Errorf("phases = %v, want init 500ms, plan 400ms, apply 250ms", r.phases)
	}
}
