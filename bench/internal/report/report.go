// Package report records a benchmark run in a results file: the command
// that reproduces it and the section appended to the file.
package report

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Command returns the shell command that runs the benchmark in pkg (such
// as ./bench/dispatch) with args, each quoted where the shell needs it.
func Command(pkg string, args []string) string {
	parts := []string{"go", "run", pkg}
	for _, a := range args {
		if strings.ContainsAny(a, " \t'\"$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// Append appends section to the file at path, creating it if needed.
func Append(path, section string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644) //nolint:gosec // results are meant to be read
	if err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if _, err := f.WriteString(section); err != nil {
		_ = f.Close()
		return fmt.Errorf("write results: %w", err)
	}
	return f.Close()
}

// Section returns the results section of a run of the benchmark name (such
// as dispatch) started with args: a heading dated now in UTC, the command
// that reproduces it, the machine and its load average, a line on what ran
// where (setup), then tables.
func Section(name string, args []string, machine, loadAverage, setup, tables string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## %s, %s\n\n", name, time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- command: `%s`\n", Command("./bench/"+name, args))
	fmt.Fprintf(&b, "- machine: %s; load average %s when the report was written\n", machine, loadAverage)
	fmt.Fprintf(&b, "- %s\n\n", setup)
	b.WriteString(tables)
	return b.String()
}

// Publish prints tables on stdout after a blank line and, when path is not
// empty, appends the run to it with appendResults and says so on stderr.
func Publish(path, tables string, appendResults func() error) error {
	fmt.Println()
	fmt.Print(tables)
	if path == "" {
		return nil
	}
	if err := appendResults(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "results appended to %s\n", path)
	return nil
}
