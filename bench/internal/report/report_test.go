package report

import (
	"regexp"
	"testing"
)

func TestSectionWritesHeadingCommandMachineSetupAndTables(t *testing.T) {
	got := Section("secrets", []string{"-updates", "5", "-results", "a b.md"}, "linux/amd64", "0.50 0.40 0.30", "everything on 127.0.0.1", "| a |\n")
	want := regexp.MustCompile("^\n## secrets, \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC\n\n" +
		regexp.QuoteMeta("- command: `go run ./bench/secrets -updates 5 -results 'a b.md'`\n"+
			"- machine: linux/amd64; load average 0.50 0.40 0.30 when the report was written\n"+
			"- everything on 127.0.0.1\n\n"+
			"| a |\n") + "$")
	if !want.MatchString(got) {
		t.Errorf("Section = %q", got)
	}
}
