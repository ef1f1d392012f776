package cli

import (
	"errors"
	"fmt"
	"testing"
)

func TestExitCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"success exits 0", nil, ExitOK},
		{"a plain error exits 1", errors.New("boom"), ExitFailure},
		{"a wrapped timeout exits 2", fmt.Errorf("wait: %w", &ExitError{Code: ExitTimeout, Err: ErrWaitTimeout}), ExitTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := ExitCode(tt.err); got != tt.want {
				t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestUnknownOutputFormatIsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	assertErrorContains(t, h.run("env", "list", "-o", "xml").err, `unknown output format "xml"`, "table, json or yaml")
}

func TestHubErrorsReadAsMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"an unknown agent is named in one line", []string{"agent", "disable", "ag-9"}, `disable agent ag-9: agent "ag-9" not found`},
		{"an existing environment is reported as such", []string{"env", "create", "prod"}, `create environment prod: environment "prod" already exists`},
		{"a bootstrap ttl over two hours is refused before the call", []string{"token", "create", "--env", "prod", "--ttl", "3h"}, "token create: --ttl 3h0m0s is out of range: bootstrap tokens live at most 2h0m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newHarness(t).login().run(tt.args...)
			if r.err == nil || r.err.Error() != tt.want {
				t.Errorf("err = %v, want %q", r.err, tt.want)
			}
		})
	}
}
