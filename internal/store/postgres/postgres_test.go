package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/outposthq/outpost/internal/store"
	"github.com/outposthq/outpost/internal/store/postgres/pgtest"
	"github.com/outposthq/outpost/internal/store/storetest"
)

func testDatabase(t *testing.T) string { return pgtest.Database(t) }

func randomName(prefix string) string { return pgtest.RandomName(prefix) }

func openSchema(t *testing.T, dbURL, schema string) *Store {
	t.Helper()
	s, err := Open(t.Context(), Options{URL: dbURL, Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// opener returns a store factory giving each caller its own schema of one
// database.
func opener(dbURL string) func(t *testing.T) store.Store {
	return func(t *testing.T) store.Store { return openSchema(t, dbURL, randomName("s_")) }
}

func TestConformance(t *testing.T) {
	storetest.Run(t, opener(testDatabase(t)))
}

func TestAuditTamperingIsDetected(t *testing.T) {
	storetest.Tamper(t, opener(testDatabase(t)), func(t *testing.T, s store.Store, query string) {
		if _, err := s.(*Store).pool.Exec(t.Context(), query); err != nil {
			t.Fatal(err)
		}
	})
}

func TestReplicas(t *testing.T) {
	dbURL := testDatabase(t)
	tests := []struct {
		name string
		run  func(t *testing.T, s1, s2 *Store)
	}{
		{"a listener on one replica hears an enqueue on another", func(t *testing.T, s1, s2 *Store) {
			storetest.Wakeups(t, s1, s2)
		}},
		{"replicas claiming at once never double-lease nor share a key", func(t *testing.T, s1, s2 *Store) {
			storetest.ConcurrentClaims(t, []store.Store{s1, s2})
		}},
		{"replicas changing one release and one secret at once number them without gaps", func(t *testing.T, s1, s2 *Store) {
			storetest.ConcurrentReleases(t, []store.Store{s1, s2})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			schema := randomName("s_")
			tt.run(t, openSchema(t, dbURL, schema), openSchema(t, dbURL, schema))
		})
	}
}

func TestReplicasStartingTogetherMigrateOnce(t *testing.T) {
	dbURL := testDatabase(t)
	schema := randomName("s_")
	var g errgroup.Group
	stores := make([]*Store, 4)
	for i := range stores {
		g.Go(func() error {
			s, err := Open(t.Context(), Options{URL: dbURL, Schema: schema})
			stores[i] = s
			return err
		})
	}
	err := g.Wait()
	for _, s := range stores {
		if s != nil {
			_ = s.Close()
		}
	}
	if err != nil {
		t.Fatalf("concurrent Open: %v", err)
	}
	s := openSchema(t, dbURL, schema)
	// Each migration applied once: one row per version.
	var rows, versions int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*), count(DISTINCT version_id) FROM goose_db_version WHERE version_id > 0`).
		Scan(&rows, &versions); err != nil {
		t.Fatal(err)
	}
	if rows != versions || versions < 2 {
		t.Fatalf("%d migration rows for %d versions, want one row per version (at least 2)", rows, versions)
	}
}

func TestListenerReconnectsAfterItsConnectionDrops(t *testing.T) {
	dbURL := testDatabase(t)
	s := openSchema(t, dbURL, randomName("s_"))
	ctx := t.Context()
	if err := s.CreateTenant(ctx, store.Tenant{Name: "acme"}, "operator:root"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateEnvironment(ctx, store.Environment{ID: "env1", Tenant: "acme", Name: "prod"}, "operator:root"); err != nil {
		t.Fatal(err)
	}
	heard := make(chan store.Wakeup, 100)
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.ListenWakeups(lctx, func(w store.Wakeup) { heard <- w }) })
	defer func() { cancel(); wg.Wait() }()

	n := 0
	// untilHeard enqueues until the listener hears one, since a listener
	// that is (re)connecting misses what is sent meanwhile.
	untilHeard := func(what string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			n++
			if _, _, err := s.EnqueueTask(ctx, store.Task{ID: fmt.Sprint("t", n), Tenant: "acme", EnvironmentID: "env1", Kind: "x"}, "operator:root"); err != nil {
				t.Fatal(err)
			}
			select {
			case <-heard:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		t.Fatalf("the listener never heard an enqueue %s", what)
	}
	untilHeard("at first")
	tag, err := s.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query = 'LISTEN outpost_wakeup' AND pid <> pg_backend_pid()`)
	if err != nil {
		t.Fatal(err)
	}
	if tag.RowsAffected() != 1 {
		t.Fatalf("terminated %d listener connections, want 1", tag.RowsAffected())
	}
	for len(heard) > 0 {
		<-heard
	}
	untilHeard("after its connection was killed")
}

func TestFailedPutLeavesNoChunks(t *testing.T) {
	s := openSchema(t, testDatabase(t), randomName("s_"))
	ctx := t.Context()
	if err := s.CreateTenant(ctx, store.Tenant{Name: "acme"}, "operator:root"); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("x"), 3*store.BlobChunkSize)
	if _, _, err := s.PutBlob(ctx, "acme", "", bytes.NewReader(data), 2*store.BlobChunkSize); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("PutBlob = %v, want ErrTooLarge", err)
	}
	var chunks, uploads int
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM blob_chunks), (SELECT count(*) FROM blob_uploads)`).Scan(&chunks, &uploads); err != nil {
		t.Fatal(err)
	}
	if chunks != 0 || uploads != 0 {
		t.Fatalf("%d chunks and %d uploads left behind", chunks, uploads)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		ok   bool
	}{
		{"a URL is enough", Options{URL: pgtest.DefaultURL}, true},
		{"a URL and a schema are fine", Options{URL: pgtest.DefaultURL, Schema: "outpost_hub"}, true},
		{"a missing URL is refused", Options{}, false},
		{"a schema that is no plain identifier is refused", Options{URL: pgtest.DefaultURL, Schema: `x"; DROP TABLE tasks; --`}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.o.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
