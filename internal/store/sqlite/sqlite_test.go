package sqlite

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outposthq/outpost/internal/store"
	"github.com/outposthq/outpost/internal/store/storetest"
)

func openTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), Options{Path: filepath.Join(t.TempDir(), "hub.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t) })
}

func TestConcurrentReleases(t *testing.T) {
	storetest.ConcurrentReleases(t, []store.Store{openTest(t)})
}

func TestAuditTamperingIsDetected(t *testing.T) {
	storetest.Tamper(t, func(t *testing.T) store.Store { return openTest(t) }, func(t *testing.T, s store.Store, query string) {
		if _, err := s.(*Store).w.ExecContext(t.Context(), query); err != nil {
			t.Fatal(err)
		}
	})
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		ok   bool
	}{
		{"a path is enough", Options{Path: "hub.db"}, true},
		{"a missing path is refused", Options{}, false},
		{"a path with a query is refused", Options{Path: "hub.db?mode=memory"}, false},
		{"a negative busy timeout is refused", Options{Path: "hub.db", BusyTimeout: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.o.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestReopenKeepsDataAndMigratesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	s, err := Open(t.Context(), Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTenant(t.Context(), store.Tenant{Name: "acme"}, "operator:root"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(t.Context(), Options{Path: path})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if _, err := s.GetTenant(t.Context(), "acme"); err != nil {
		t.Fatalf("tenant after reopen: %v", err)
	}
}

func TestDatabaseFilesAreOwnerOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	s, err := Open(t.Context(), Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateTenant(t.Context(), store.Tenant{Name: "acme"}, "operator:root"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %v, want -rw-------", filepath.Base(name), mode)
		}
	}
}

func TestPragmas(t *testing.T) {
	s := openTest(t)
	var mode string
	var fk, busy int
	if err := s.r.QueryRowContext(t.Context(), `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if err := s.r.QueryRowContext(t.Context(), `PRAGMA foreign_keys`).Scan(&fk); err != nil {
		t.Fatal(err)
	}
	if err := s.w.QueryRowContext(t.Context(), `PRAGMA busy_timeout`).Scan(&busy); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" || fk != 1 || busy <= 0 {
		t.Fatalf("journal_mode=%s foreign_keys=%d busy_timeout=%d, want wal, 1, >0", mode, fk, busy)
	}
	if _, err := s.r.ExecContext(t.Context(), `INSERT INTO settings (key, value) VALUES ('x', x'00')`); err == nil {
		t.Fatal("the read pool accepted a write")
	}
}

func TestFailedPutLeavesNoChunks(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	if err := s.CreateTenant(ctx, store.Tenant{Name: "acme"}, "operator:root"); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("x"), 3*store.BlobChunkSize)
	_, _, err := s.PutBlob(ctx, "acme", "", bytes.NewReader(data), 2*store.BlobChunkSize)
	if !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("PutBlob = %v, want ErrTooLarge", err)
	}
	_, _, err = s.PutBlob(ctx, "acme", "sha256:"+string(bytes.Repeat([]byte("0"), 64)), bytes.NewReader(data[:10]), 0)
	if !errors.Is(err, store.ErrDigestMismatch) {
		t.Fatalf("PutBlob = %v, want ErrDigestMismatch", err)
	}
	var chunks, uploads int
	if err := s.r.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM blob_chunks), (SELECT count(*) FROM blob_uploads)`).Scan(&chunks, &uploads); err != nil {
		t.Fatal(err)
	}
	if chunks != 0 || uploads != 0 {
		t.Fatalf("%d chunks and %d uploads left behind", chunks, uploads)
	}
}

// A claim must not walk an environment's finished tasks: on a busy hub
// they outnumber the unfinished ones by far, and every claim would slow
// down as history grows.
func TestClaimReadsOnlyUnfinishedTasks(t *testing.T) {
	s := openTest(t)
	rows, err := s.r.DB.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+qQueueEntries, "acme", "env", "acme", "env", 10)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	searches := 0
	for _, step := range plan {
		if !strings.Contains(step, " tasks") {
			continue
		}
		if !strings.HasPrefix(step, "SEARCH tasks USING INDEX tasks_unfinished ") {
			t.Fatalf("claim query plan step %q, want a search of tasks_unfinished; plan %q", step, plan)
		}
		searches++
	}
	if searches != 2 {
		t.Fatalf("claim query plan %q, want two searches of tasks_unfinished", plan)
	}
}
