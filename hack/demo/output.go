package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// printer writes the demo's walk-through: step headers, the commands it
// runs (so they can be copied) and their output, indented under the step.
type printer struct {
	w     io.Writer
	color bool
	// dir, once set, is the state directory, shown as "$DEMO" so that
	// commands stay short and can be pasted after `export DEMO=dir`.
	dir string
}

// stateDirVar is the shell variable the state directory is shown as.
const stateDirVar = "DEMO"

// newPrinter colours step headers only for a terminal that wants colour.
func newPrinter(w io.Writer, getenv func(string) string) *printer {
	color := false
	if f, ok := w.(*os.File); ok && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb" {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			color = true
		}
	}
	return &printer{w: w, color: color}
}

const (
	ansiBold  = "\033[1m"
	ansiBlue  = "\033[1;34m"
	ansiGreen = "\033[32m"
	ansiRed   = "\033[1;31m"
	ansiDim   = "\033[2m"
	ansiReset = "\033[0m"
)

func (p *printer) paint(code, s string) string {
	if !p.color {
		return s
	}
	return code + s + ansiReset
}

// step starts a new section.
func (p *printer) step(format string, args ...any) {
	fmt.Fprintf(p.w, "\n%s %s\n", p.paint(ansiBlue, "==>"), p.paint(ansiBold, fmt.Sprintf(format, args...)))
}

// say writes one indented line of explanation.
func (p *printer) say(format string, args ...any) {
	fmt.Fprintf(p.w, "    %s\n", fmt.Sprintf(format, args...))
}

// ok writes a check that passed.
func (p *printer) ok(format string, args ...any) {
	fmt.Fprintf(p.w, "    %s %s\n", p.paint(ansiGreen, "✓"), fmt.Sprintf(format, args...))
}

// fail writes what went wrong, to be followed by where to look.
func (p *printer) fail(format string, args ...any) {
	fmt.Fprintf(p.w, "\n%s %s\n", p.paint(ansiRed, "✗"), fmt.Sprintf(format, args...))
}

// command shows a command line as it can be typed into a shell.
func (p *printer) command(args ...string) {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = p.shellArg(a)
	}
	fmt.Fprintf(p.w, "    %s\n", p.paint(ansiDim, "$ "+strings.Join(quoted, " ")))
}

// block writes text indented under the current step; blank trailing lines
// are dropped.
func (p *printer) block(text string) {
	text = strings.TrimRight(text, "\n ")
	if text == "" {
		return
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Fprintf(p.w, "      %s\n", sc.Text())
	}
}

// plain writes a line without indentation.
func (p *printer) plain(format string, args ...any) {
	fmt.Fprintf(p.w, format+"\n", args...)
}

// shellArg quotes a for a shell, writing a path in the state directory
// relative to $DEMO.
func (p *printer) shellArg(a string) string {
	if p.dir != "" && (a == p.dir || strings.HasPrefix(a, p.dir+"/")) {
		if rest := a[len(p.dir):]; rest == "" || shellSafe.MatchString(rest) {
			return `"$` + stateDirVar + rest + `"`
		}
	}
	return shellQuote(a)
}

// path shows a path in the state directory relative to $DEMO, for prose.
func (p *printer) path(a string) string {
	if p.dir != "" && strings.HasPrefix(a, p.dir+"/") {
		return "$" + stateDirVar + a[len(p.dir):]
	}
	return a
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// shellQuote quotes s for a POSIX shell only when it needs it.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// tail returns the last n lines of the file at path, or a note saying why
// it cannot.
func tail(path string, n int) string {
	b, err := os.ReadFile(path) //nolint:gosec // a log in the demo's own state directory
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
