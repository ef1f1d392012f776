package hubcmd

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/outposthq/outpost/internal/store"
	"github.com/outposthq/outpost/internal/store/postgres"
	"github.com/outposthq/outpost/internal/store/sqlite"
)

// OpenStore opens the store named by dsn: a postgres:// or postgresql://
// URL, or a SQLite file path (optionally prefixed sqlite://). Opening runs
// the embedded migrations.
func OpenStore(ctx context.Context, dsn string, log *slog.Logger) (store.Store, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s, err := postgres.Open(ctx, postgres.Options{URL: dsn, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL store: %w", err)
		}
		return s, nil
	case dsn == "":
		return nil, fmt.Errorf("no database: set --db to a SQLite file or a postgres:// URL")
	default:
		s, err := sqlite.Open(ctx, sqlite.Options{Path: strings.TrimPrefix(dsn, "sqlite://"), Logger: log})
		if err != nil {
			return nil, fmt.Errorf("open SQLite store: %w", err)
		}
		return s, nil
	}
}
