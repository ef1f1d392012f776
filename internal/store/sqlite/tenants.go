package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/outposthq/outpost/internal/store"
)

// CreateTenant creates a tenant and the head of its audit chain.
func (s *Store) CreateTenant(ctx context.Context, t store.Tenant, actor string) error {
	t.CreatedAt = s.orNow(t.CreatedAt)
	_, err := s.write(ctx, "create tenant", func(tx *tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO tenants (name, created_at) VALUES (?, ?)`, t.Name, t.CreatedAt.UnixMicro()); err != nil {
			if isUnique(err) {
				return fmt.Errorf("tenant %q: %w", t.Name, store.ErrAlreadyExists)
			}
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_heads (tenant, seq, hash) VALUES (?, 0, '')`, t.Name); err != nil {
			return err
		}
		tx.record(store.TenantCreatedEvent(t, actor))
		return nil
	})
	return err
}

// GetTenant returns the tenant named name.
func (s *Store) GetTenant(ctx context.Context, name string) (store.Tenant, error) {
	var created int64
	err := s.r.QueryRowContext(ctx, `SELECT created_at FROM tenants WHERE name = ?`, name).Scan(&created)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Tenant{}, fmt.Errorf("get tenant %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.Tenant{}, fmt.Errorf("get tenant: %w", err)
	}
	return store.Tenant{Name: name, CreatedAt: time.UnixMicro(created).UTC()}, nil
}

func tenantExists(ctx context.Context, q querier, name string) error {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM tenants WHERE name = ?`, name).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("tenant %q: %w", name, store.ErrNotFound)
	}
	return err
}

// querier is what both a pool and a transaction offer.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// CreateAPIToken stores an operator token of an existing tenant.
func (s *Store) CreateAPIToken(ctx context.Context, tok store.APIToken, actor string) error {
	tok.CreatedAt = s.orNow(tok.CreatedAt)
	_, err := s.write(ctx, "create api token", func(tx *tx) error {
		if err := tenantExists(ctx, tx, tok.Tenant); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO api_tokens (id, tenant, name, hash, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?)`,
			tok.ID, tok.Tenant, tok.Name, tok.Hash, tok.CreatedAt.UnixMicro(), micros(store.Micro(tok.ExpiresAt))); err != nil {
			if isUnique(err) {
				return fmt.Errorf("api token %q: %w", tok.ID, store.ErrAlreadyExists)
			}
			return err
		}
		tx.record(store.APITokenCreatedEvent(tok, actor))
		return nil
	})
	return err
}

// GetAPITokenByHash returns the unexpired token whose hash is hash.
func (s *Store) GetAPITokenByHash(ctx context.Context, hash []byte, now time.Time) (store.APIToken, error) {
	now = s.orNow(now)
	var (
		tok     store.APIToken
		created int64
		expires sql.NullInt64
	)
	err := s.r.QueryRowContext(ctx, qGetAPIToken, hash).
		Scan(&tok.ID, &tok.Tenant, &tok.Name, &tok.Hash, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return store.APIToken{}, fmt.Errorf("get api token: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.APIToken{}, fmt.Errorf("get api token: %w", err)
	}
	tok.CreatedAt = time.UnixMicro(created).UTC()
	tok.ExpiresAt = fromMicros(expires)
	if !tok.ExpiresAt.IsZero() && !now.Before(tok.ExpiresAt) {
		return store.APIToken{}, fmt.Errorf("get api token: expired: %w", store.ErrNotFound)
	}
	return tok, nil
}

// CreateEnvironment creates an environment in an existing tenant.
func (s *Store) CreateEnvironment(ctx context.Context, env store.Environment, actor string) error {
	env.CreatedAt = s.orNow(env.CreatedAt)
	_, err := s.write(ctx, "create environment", func(tx *tx) error {
		if err := tenantExists(ctx, tx, env.Tenant); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO environments (id, tenant, name, created_at) VALUES (?, ?, ?, ?)`,
			env.ID, env.Tenant, env.Name, env.CreatedAt.UnixMicro()); err != nil {
			if isUnique(err) {
				return fmt.Errorf("environment %s/%s: %w", env.Tenant, env.Name, store.ErrAlreadyExists)
			}
			return err
		}
		tx.record(store.EnvironmentCreatedEvent(env, actor))
		return nil
	})
	return err
}

const envColumns = `id, tenant, name, created_at`

func scanEnv(row interface{ Scan(...any) error }) (store.Environment, error) {
	var (
		env     store.Environment
		created int64
	)
	if err := row.Scan(&env.ID, &env.Tenant, &env.Name, &created); err != nil {
		return store.Environment{}, err
	}
	env.CreatedAt = time.UnixMicro(created).UTC()
	return env, nil
}

func getEnv(ctx context.Context, q querier, id string) (store.Environment, error) {
	env, err := scanEnv(q.QueryRowContext(ctx, qGetEnv, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Environment{}, fmt.Errorf("environment %q: %w", id, store.ErrNotFound)
	}
	return env, err
}

// GetEnvironment returns the environment with id.
func (s *Store) GetEnvironment(ctx context.Context, id string) (store.Environment, error) {
	env, err := getEnv(ctx, s.r, id)
	if err != nil {
		return store.Environment{}, fmt.Errorf("get environment: %w", err)
	}
	return env, nil
}

// GetEnvironmentByName returns the tenant's environment called name.
func (s *Store) GetEnvironmentByName(ctx context.Context, tenant, name string) (store.Environment, error) {
	env, err := scanEnv(s.r.QueryRowContext(ctx, qGetEnvByName, tenant, name))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Environment{}, fmt.Errorf("get environment %s/%s: %w", tenant, name, store.ErrNotFound)
	}
	if err != nil {
		return store.Environment{}, fmt.Errorf("get environment: %w", err)
	}
	return env, nil
}

// ListEnvironments lists the tenant's environments by name.
func (s *Store) ListEnvironments(ctx context.Context, tenant string) ([]store.Environment, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+envColumns+` FROM environments WHERE tenant = ? ORDER BY name`, tenant)
	if err != nil {
		return nil, fmt.Errorf("list environments: %w", err)
	}
	defer rows.Close()
	var out []store.Environment
	for rows.Next() {
		env, err := scanEnv(rows)
		if err != nil {
			return nil, fmt.Errorf("list environments: %w", err)
		}
		out = append(out, env)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list environments: %w", err)
	}
	return out, nil
}

// GetOrCreateSetting stores value under key unless a value exists, and
// returns the stored one.
func (s *Store) GetOrCreateSetting(ctx context.Context, key string, value []byte) ([]byte, error) {
	var stored []byte
	_, err := s.write(ctx, "get or create setting", func(tx *tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, key, nonNil(value)); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&stored)
	})
	return stored, err
}
