package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestLogTailReturnsOnlyCompleteLinesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.log")
	write := func(s string) {
		t.Helper()
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	tail := &logTail{path: path}
	msgs := func() []string {
		t.Helper()
		recs, err := tail.next()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range recs {
			out = append(out, r.kv["msg"]+"/"+r.kv["release"])
		}
		return out
	}
	write(`time=2026-12-02T06:00:00.123Z level=DEBUG msg="release synced" release=rel-0001 revision=1 objects=3` + "\n" +
		`time=2026-12-02T06:00:00.200Z level=INFO msg="drift corr`)
	if got, want := msgs(), []string{"release synced/rel-0001"}; !slices.Equal(got, want) {
		t.Fatalf("first read: %q, want %q", got, want)
	}
	write(`ected" release=rel-0002 object="apps/v1 x"` + "\n")
	if got, want := msgs(), []string{"drift corrected/rel-0002"}; !slices.Equal(got, want) {
		t.Fatalf("second read: %q, want %q", got, want)
	}
	if got := msgs(); len(got) != 0 {
		t.Fatalf("nothing new, read %q", got)
	}
}

func TestRecordTimeIsTheLogsOwn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.log")
	if err := os.WriteFile(path, []byte(`time=2026-12-02T06:00:00.123Z level=INFO msg=leading`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	recs, err := (&logTail{path: path}).next()
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 12, 2, 6, 0, 0, 123e6, time.UTC)
	if len(recs) != 1 || !recs[0].at.Equal(want) || recs[0].kv["msg"] != msgLeading {
		t.Fatalf("records %+v, want one leading at %v", recs, want)
	}
}

func TestWithoutBootstrapKeepsEverythingElse(t *testing.T) {
	got := withoutBootstrap([]string{"--hub", "h", "--bootstrap-token-file", "/tmp/t", "--log-level", "debug"})
	if want := []string{"--hub", "h", "--log-level", "debug"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}
