package terraform

import "testing"

func TestIsConfigError(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want bool
	}{
		{"an unsupported argument is a configuration error", "exit status 1\n\nError: Unsupported argument\n\n  on main.tf line 2:\n", true},
		{"a missing variable is a configuration error", "Error: No value for required variable\n", true},
		{"a lock beside a configuration error is not", "Error: Unsupported argument\n\nError: Error acquiring the state lock\n", false},
		{"an unreachable backend is not", "Error: Error loading state: Get \"https://10.0.0.1/api\": dial tcp: i/o timeout\n", false},
		{"an unknown diagnostic is not", "Error: Something new\n", false},
		{"text without diagnostics is not", "signal: killed", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isConfigError(tt.msg); got != tt.want {
				t.Fatalf("isConfigError = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseLockInfo(t *testing.T) {
	msg := `Error: Error acquiring the state lock

Error message: resource temporarily unavailable
Lock Info:
  ID:        4b5a3a3e-0d1c-7f1e-2c3b-9a8b7c6d5e4f
  Path:      /state/db.tfstate
  Operation: OperationTypeApply
  Who:       root@agent-0
  Version:   1.11.6
  Created:   2026-12-02 09:00:00.1 +0000 UTC
  Info:      
`
	li := parseLockInfo(msg)
	if li.ID != "4b5a3a3e-0d1c-7f1e-2c3b-9a8b7c6d5e4f" || li.Operation != "OperationTypeApply" || li.Who != "root@agent-0" || li.Created != "2026-12-02 09:00:00.1 +0000 UTC" {
		t.Fatalf("lock info = %+v", li)
	}
	if got := li.describe(); got != "root@agent-0 (OperationTypeApply since 2026-12-02 09:00:00.1 +0000 UTC)" {
		t.Fatalf("describe = %q", got)
	}
	if got := parseLockInfo("Error: Error acquiring the state lock").describe(); got != "an unknown client" {
		t.Fatalf("describe without details = %q", got)
	}
}
