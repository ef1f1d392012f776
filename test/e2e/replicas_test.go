package e2e

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/hubtest"
	"github.com/outposthq/outpost/internal/store/postgres"
	"github.com/outposthq/outpost/internal/store/postgres/pgtest"
)

// TestTwoHubReplicasOnOnePostgreSQL runs two hub replicas, each with its
// own connection pool, on one database: an agent held by replica 1 is woken
// by an enqueue on replica 2 and the task runs once.
func TestTwoHubReplicasOnOnePostgreSQL(t *testing.T) {
	dbURL := pgtest.Database(t)
	open := func() *postgres.Store {
		s, err := postgres.Open(t.Context(), postgres.Options{URL: dbURL})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	// Both replicas share the signing key, as they do in production when
	// the key lives in the database.
	replica1 := hubtest.Start(t, hubtest.Options{Store: open(), Hub: fastHub})
	replica2 := hubtest.Start(t, hubtest.Options{Store: open(), Hub: fastHub})
	boot := replica2.CreateEnvironment(t, "prod")

	hits := make(chan struct{}, 10)
	api := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits <- struct{}{} }))
	defer api.Close()
	startAgent(t, replica1, agentConfig{bootstrap: boot}) // Watch held on replica 1
	waitConnected(t, replica1, "prod")
	time.Sleep(200 * time.Millisecond) // the first claim has come and gone

	start := time.Now()
	replica2.Enqueue(t, httpTask("cross-replica", "prod", api.URL, nil))
	select {
	case <-hits:
	case <-time.After(5 * time.Second):
		t.Fatal("agent on replica 1 was not woken by an enqueue on replica 2")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("cross-replica wake-up took %v, want well under a second", d)
	}
	got := replica2.WaitTask(t, "cross-replica", 10*time.Second, hubtest.Terminal)
	if got.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED || got.GetAttempt() != 1 {
		t.Fatalf("state %v attempt %d", got.GetState(), got.GetAttempt())
	}
}
