package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// benchDatabase is a PostgreSQL database made for one run.
type benchDatabase struct {
	URL      string
	name     string
	adminURL string
}

// createDatabase makes a fresh database outpost_bench_<random> on the
// server adminURL names. It fails fast when the server is unreachable.
func createDatabase(ctx context.Context, adminURL string) (*benchDatabase, error) {
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("PostgreSQL URL %q must be a postgres:// URL", adminURL)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "outpost_bench_" + hex.EncodeToString(b)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, withoutPoolParams(u))
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(cctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	db := *u
	db.Path = "/" + name
	return &benchDatabase{URL: db.String(), name: name, adminURL: withoutPoolParams(u)}, nil
}

// withoutPoolParams drops pgxpool's settings (pool_max_conns, …), which
// the hub's pool honours but a single connection refuses.
func withoutPoolParams(u *url.URL) string {
	c := *u
	q := c.Query()
	for k := range q {
		if strings.HasPrefix(k, "pool_") {
			q.Del(k)
		}
	}
	c.RawQuery = q.Encode()
	return c.String()
}

// Drop removes the database, closing whatever still holds it open.
func (d *benchDatabase) Drop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.adminURL)
	if err != nil {
		return fmt.Errorf("drop database %s: %w", d.name, err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{d.name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", d.name, err)
	}
	return nil
}
