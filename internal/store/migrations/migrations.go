package migrations

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed sqlite/*.sql
var sqliteFS embed.FS

//go:embed postgres/*.sql
var postgresFS embed.FS

// SQLite applies every pending SQLite migration to db.
func SQLite(ctx context.Context, db *sql.DB, logger *slog.Logger) error {
	return up(ctx, goose.DialectSQLite3, db, sqliteFS, "sqlite", logger)
}

// Postgres applies every pending PostgreSQL migration to db, whose
// connections must already use the target schema (search_path). A session
// advisory lock derived from schema serializes replicas migrating the same
// schema at once.
func Postgres(ctx context.Context, db *sql.DB, schema string, logger *slog.Logger) error {
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(LockID(schema)),
		lock.WithLockTimeout(1, 300),
	)
	if err != nil {
		return fmt.Errorf("migrate: session locker: %w", err)
	}
	return up(ctx, goose.DialectPostgres, db, postgresFS, "postgres", logger, goose.WithSessionLocker(locker))
}

// LockID is the advisory lock key guarding migrations of schema.
func LockID(schema string) int64 {
	sum := sha256.Sum256([]byte("outpost-migrate:" + schema))
	var id int64
	for _, b := range sum[:7] { // 56 bits: always a positive int64
		id = id<<8 | int64(b)
	}
	return id
}

func up(ctx context.Context, dialect goose.Dialect, db *sql.DB, fsys embed.FS, dir string, logger *slog.Logger, opts ...goose.ProviderOption) error {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	opts = append(opts, goose.WithDisableGlobalRegistry(true))
	// The provider is not closed: Close would close db, which the caller owns.
	p, err := goose.NewProvider(dialect, db, sub, opts...)
	if err != nil {
		return fmt.Errorf("migrate: new provider: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate: up: %w", err)
	}
	for _, r := range results {
		logger.InfoContext(ctx, "applied migration", "version", r.Source.Version, "duration", r.Duration)
	}
	return nil
}
