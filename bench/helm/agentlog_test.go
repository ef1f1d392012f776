package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestReadAgentLogFindsTheExecutorsRecordsOfOurTasks(t *testing.T) {
	log := `time=2026-12-02T03:16:09.100Z level=INFO msg="helm release validated" task=helm-c8-000 attempt=1 release=app-000 namespace=bench-c8-00 action=install objects=20
time=2026-12-02T03:16:09.600Z level=INFO msg="helm task done" task=helm-c8-000 attempt=1 release=app-000 namespace=bench-c8-00 action=install revision=1 objects=20 duration=1.2s
time=2026-12-02T03:16:09.610Z level=INFO msg=reported task=helm-c8-000 kind=helm epoch=1 outcome=OUTCOME_SUCCEEDED error=""
time=2026-12-02T03:16:09.700Z level=INFO msg="helm task done" task=other duration=1s
time=2026-12-02T03:16:09.710Z level=INFO msg=reported task=other kind=helm epoch=1 outcome=OUTCOME_SUCCEEDED error=""
time=2026-12-02T03:16:09.800Z level=INFO msg=reported task=helm-c8-001 kind=helm epoch=1 outcome=OUTCOME_FAILED error="helm x: render: task=helm-c8-000 \"quoted\""
`
	path := filepath.Join(t.TempDir(), "agent.log")
	if err := os.WriteFile(path, []byte("an earlier line msg=reported task=helm-c8-000\n"+log), 0o600); err != nil {
		t.Fatal(err)
	}
	offset := int64(len("an earlier line msg=reported task=helm-c8-000\n"))
	records, reported, err := readAgentLog(path, offset, map[string]bool{"helm-c8-000": true, "helm-c8-001": true})
	if err != nil {
		t.Fatal(err)
	}
	if reported != 2 {
		t.Errorf("reported = %d, want 2 (both of our tasks, neither the other task nor the line before the offset)", reported)
	}
	r := records["helm-c8-000"]
	if r == nil || len(records) != 1 {
		t.Fatalf("records = %v, want one for helm-c8-000", records)
	}
	if r.duration != 1200*time.Millisecond || r.done.Sub(r.validated) != 500*time.Millisecond {
		t.Errorf("record = %+v, want a 1.2 s task validated 500 ms before it ended", r)
	}
}
