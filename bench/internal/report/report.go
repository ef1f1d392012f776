// Package report records a benchmark run in a results file: the command
// that reproduces it and the section appended to the file.
package report

import (
	"fmt"
	"os"
	"strings"
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
