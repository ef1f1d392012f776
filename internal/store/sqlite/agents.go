package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/outposthq/outpost/internal/store"
)

// CreateBootstrapToken stores a single-use enrollment token of an existing
// environment.
func (s *Store) CreateBootstrapToken(ctx context.Context, tok store.BootstrapToken, actor string) error {
	tok.CreatedAt = s.orNow(tok.CreatedAt)
	tok.ExpiresAt = store.Micro(tok.ExpiresAt)
	_, err := s.write(ctx, "create bootstrap token", func(tx *tx) error {
		env, err := getEnv(ctx, tx, tok.EnvironmentID)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO bootstrap_tokens (id, hash, environment_id, created_at, expires_at, created_by)
			VALUES (?, ?, ?, ?, ?, ?)`,
			tok.ID, tok.Hash, tok.EnvironmentID, tok.CreatedAt.UnixMicro(), tok.ExpiresAt.UnixMicro(), tok.CreatedBy); err != nil {
			if isUnique(err) {
				return fmt.Errorf("bootstrap token %q: %w", tok.ID, store.ErrAlreadyExists)
			}
			return err
		}
		tx.record(store.BootstrapTokenCreatedEvent(tok, env, actor))
		return nil
	})
	return err
}

// EnrollAgent consumes the bootstrap token and creates the agent in the
// token's environment, atomically.
func (s *Store) EnrollAgent(ctx context.Context, p store.EnrollParams) (store.Agent, error) {
	now := s.orNow(p.Now)
	a := p.Agent
	_, err := s.write(ctx, "enroll agent", func(tx *tx) error {
		var (
			tokID, envID string
			expires      int64
			used         sql.NullInt64
		)
		err := tx.QueryRowContext(ctx, `SELECT id, environment_id, expires_at, used_at FROM bootstrap_tokens WHERE hash = ?`, p.TokenHash).
			Scan(&tokID, &envID, &expires, &used)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("unknown token: %w", store.ErrTokenInvalid)
		}
		if err != nil {
			return err
		}
		switch {
		case used.Valid:
			return fmt.Errorf("token already used: %w", store.ErrTokenInvalid)
		case !now.Before(time.UnixMicro(expires)):
			return fmt.Errorf("token expired: %w", store.ErrTokenInvalid)
		case p.ExpectedEnvironmentID != "" && p.ExpectedEnvironmentID != envID:
			return fmt.Errorf("token is for another environment: %w", store.ErrTokenInvalid)
		}
		env, err := getEnv(ctx, tx, envID)
		if err != nil {
			return err
		}
		a = store.Agent{
			ID: a.ID, EnvironmentID: env.ID, Tenant: env.Tenant, PublicKey: a.PublicKey,
			Hostname: a.Hostname, Version: a.Version, EnrolledAt: now, LastSeenAt: now,
		}
		if _, err := tx.ExecContext(ctx, `UPDATE bootstrap_tokens SET used_at = ?, used_by = ? WHERE id = ?`, now.UnixMicro(), a.ID, tokID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO agents (id, environment_id, tenant, public_key, hostname, version, enrolled_at, last_seen_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			a.ID, a.EnvironmentID, a.Tenant, nonNil(a.PublicKey), a.Hostname, a.Version, now.UnixMicro(), now.UnixMicro()); err != nil {
			if isUnique(err) {
				return fmt.Errorf("agent %q: %w", a.ID, store.ErrAlreadyExists)
			}
			return err
		}
		tx.record(store.AgentRegisteredEvent(a, env, tokID))
		return nil
	})
	if err != nil {
		return store.Agent{}, err
	}
	return a, nil
}

// CreateNonce stores a single-use nonce.
func (s *Store) CreateNonce(ctx context.Context, nonce []byte, expiresAt time.Time) error {
	_, err := s.write(ctx, "create nonce", func(tx *tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO nonces (nonce, expires_at) VALUES (?, ?)`, nonce, store.Micro(expiresAt).UnixMicro()); err != nil {
			if isUnique(err) {
				return store.ErrAlreadyExists
			}
			return err
		}
		return nil
	})
	return err
}

// ConsumeNonce deletes the nonce; it fails with ErrNonceInvalid when the
// nonce was absent or had expired.
func (s *Store) ConsumeNonce(ctx context.Context, nonce []byte, now time.Time) error {
	now = s.orNow(now)
	var expires int64
	err := s.w.QueryRowContext(ctx, `DELETE FROM nonces WHERE nonce = ? RETURNING expires_at`, nonce).Scan(&expires)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("consume nonce: %w", store.ErrNonceInvalid)
	}
	if err != nil {
		return fmt.Errorf("consume nonce: %w", err)
	}
	if !now.Before(time.UnixMicro(expires)) {
		return fmt.Errorf("consume nonce: expired: %w", store.ErrNonceInvalid)
	}
	return nil
}

const agentColumns = `id, environment_id, tenant, public_key, hostname, version, enrolled_at, last_seen_at, disabled, disabled_at`

func scanAgent(row interface{ Scan(...any) error }) (store.Agent, error) {
	var (
		a                  store.Agent
		enrolled           int64
		lastSeen, disabled sql.NullInt64
	)
	if err := row.Scan(&a.ID, &a.EnvironmentID, &a.Tenant, &a.PublicKey, &a.Hostname, &a.Version,
		&enrolled, &lastSeen, &a.Disabled, &disabled); err != nil {
		return store.Agent{}, err
	}
	a.EnrolledAt = time.UnixMicro(enrolled).UTC()
	a.LastSeenAt = fromMicros(lastSeen)
	a.DisabledAt = fromMicros(disabled)
	return a, nil
}

func getAgent(ctx context.Context, q querier, id string) (store.Agent, error) {
	a, err := scanAgent(q.QueryRowContext(ctx, qGetAgent, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Agent{}, fmt.Errorf("agent %q: %w", id, store.ErrNotFound)
	}
	return a, err
}

// GetAgent returns the agent with id.
func (s *Store) GetAgent(ctx context.Context, id string) (store.Agent, error) {
	a, err := getAgent(ctx, s.r, id)
	if err != nil {
		return store.Agent{}, fmt.Errorf("get agent: %w", err)
	}
	return a, nil
}

// ListAgents lists a tenant's agents, of one environment if envID is set,
// in enrollment order.
func (s *Store) ListAgents(ctx context.Context, tenant, envID string) ([]store.Agent, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+agentColumns+` FROM agents
		WHERE tenant = ? AND (? = '' OR environment_id = ?) ORDER BY enrolled_at, id`, tenant, envID, envID)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	defer rows.Close()
	var out []store.Agent
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return nil, fmt.Errorf("list agents: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return out, nil
}

// DisableAgent disables the tenant's agent id; disabling it again changes
// nothing.
func (s *Store) DisableAgent(ctx context.Context, tenant, id, actor string, now time.Time) (store.Agent, error) {
	now = s.orNow(now)
	var a store.Agent
	_, err := s.write(ctx, "disable agent", func(tx *tx) error {
		var err error
		a, err = getAgent(ctx, tx, id)
		if err != nil {
			return err
		}
		if a.Tenant != tenant {
			return fmt.Errorf("agent %q: %w", id, store.ErrNotFound)
		}
		if a.Disabled {
			return nil
		}
		a.Disabled, a.DisabledAt = true, now
		if _, err := tx.ExecContext(ctx, `UPDATE agents SET disabled = 1, disabled_at = ? WHERE id = ?`, now.UnixMicro(), id); err != nil {
			return err
		}
		env, err := getEnv(ctx, tx, a.EnvironmentID)
		if err != nil {
			return err
		}
		tx.record(store.AgentDisabledEvent(a, env, actor))
		return nil
	})
	if err != nil {
		return store.Agent{}, err
	}
	return a, nil
}

// TouchAgent records that the agent was seen now, running version (kept
// as it was when empty).
func (s *Store) TouchAgent(ctx context.Context, id, version string, now time.Time) error {
	now = s.orNow(now)
	res, err := s.w.ExecContext(ctx, `UPDATE agents SET last_seen_at = ?, version = CASE WHEN ? = '' THEN version ELSE ? END WHERE id = ?`,
		now.UnixMicro(), version, version, id)
	if err != nil {
		return fmt.Errorf("touch agent: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("touch agent: %w", err)
	} else if n == 0 {
		return fmt.Errorf("touch agent %q: %w", id, store.ErrNotFound)
	}
	return nil
}
