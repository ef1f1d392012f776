package main

import (
	"bytes"
	"testing"
)

func TestPrintedCommandsCanBePastedIntoAShell(t *testing.T) {
	p := &printer{dir: "/home/me/.cache/outpost/demo/1"}
	tests := []struct {
		name, arg, want string
	}{
		{"a plain word stays as it is", "--env", "--env"},
		{"a URL stays as it is", "https://127.0.0.1:8443", "https://127.0.0.1:8443"},
		{"JSON is single-quoted", `{"a":"${vault://x}"}`, `'{"a":"${vault://x}"}'`},
		{"a single quote is escaped", "it's", `'it'\''s'`},
		{"an empty argument stays visible", "", "''"},
		{"a path in the state directory uses $DEMO", "/home/me/.cache/outpost/demo/1/tls/ca.crt", `"$DEMO/tls/ca.crt"`},
		{"the state directory itself uses $DEMO", "/home/me/.cache/outpost/demo/1", `"$DEMO"`},
		{"a sibling directory is not mistaken for it", "/home/me/.cache/outpost/demo/12", "/home/me/.cache/outpost/demo/12"},
		{"an odd path in the state directory is quoted whole", "/home/me/.cache/outpost/demo/1/a b", `'/home/me/.cache/outpost/demo/1/a b'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.shellArg(tt.arg); got != tt.want {
				t.Errorf("shellArg(%q) = %s, want %s", tt.arg, got, tt.want)
			}
		})
	}
}

func TestStepHeadersAreColouredOnlyForATerminal(t *testing.T) {
	var buf bytes.Buffer
	p := newPrinter(&buf, func(string) string { return "" })
	p.step("Starting the hub")
	if got, want := buf.String(), "\n==> Starting the hub\n"; got != want {
		t.Errorf("step wrote %q, want %q", got, want)
	}
}
