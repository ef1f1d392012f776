package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is the local server with trust authentication.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// URL is the server tests use: OUTPOST_TEST_POSTGRES_URL, or the local
// server with trust authentication.
func URL() string {
	if u := os.Getenv("OUTPOST_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// RandomName returns prefix followed by random hex, a valid identifier.
func RandomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// withDatabase returns base pointing at database name instead.
func withDatabase(base, name string) (string, error) {
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		if err != nil {
			return "", err
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	return base + " dbname=" + name, nil
}

func redacted(u string) string {
	if p, err := url.Parse(u); err == nil && p.Scheme != "" {
		return p.Redacted()
	}
	return "(connection string)"
}

// Database creates a fresh database for the calling test, dropped when it
// ends, and returns its URL. Without a server the test is skipped,
// loudly, except under CI=true where it fails.
func Database(t testing.TB) string {
	t.Helper()
	base := URL()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		msg := fmt.Sprintf("PostgreSQL is not reachable at %s: %v. Start it or set OUTPOST_TEST_POSTGRES_URL.", redacted(base), err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("!!!!! SKIPPING POSTGRESQL STORE TESTS !!!!! " + msg + " (CI=true turns this skip into a failure)")
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	name := RandomName("outpost_test_")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer func() { _ = conn.Close(ctx) }()
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	u, err := withDatabase(base, name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
