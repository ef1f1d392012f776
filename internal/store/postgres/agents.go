package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

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
		if _, err := tx.Exec(ctx, `INSERT INTO bootstrap_tokens (id, hash, environment_id, created_at, expires_at, created_by)
			VALUES ($1, $2, $3, $4, $5, $6)`,
			tok.ID, nonNil(tok.Hash), tok.EnvironmentID, tok.CreatedAt, tok.ExpiresAt, tok.CreatedBy); err != nil {
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
// token's environment, atomically; the token row stays locked until then,
// so two enrollments with one token cannot both succeed.
func (s *Store) EnrollAgent(ctx context.Context, p store.EnrollParams) (store.Agent, error) {
	now := s.orNow(p.Now)
	a := p.Agent
	_, err := s.write(ctx, "enroll agent", func(tx *tx) error {
		var (
			tokID, envID string
			expires      time.Time
			used         pgtype.Timestamptz
		)
		err := tx.QueryRow(ctx, `SELECT id, environment_id, expires_at, used_at FROM bootstrap_tokens WHERE hash = $1 FOR UPDATE`, p.TokenHash).
			Scan(&tokID, &envID, &expires, &used)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("unknown token: %w", store.ErrTokenInvalid)
		}
		if err != nil {
			return err
		}
		switch {
		case used.Valid:
			return fmt.Errorf("token already used: %w", store.ErrTokenInvalid)
		case !now.Before(expires):
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
		if _, err := tx.Exec(ctx, `UPDATE bootstrap_tokens SET used_at = $1, used_by = $2 WHERE id = $3`, now, a.ID, tokID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO agents (id, environment_id, tenant, public_key, hostname, version, enrolled_at, last_seen_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7)`,
			a.ID, a.EnvironmentID, a.Tenant, nonNil(a.PublicKey), a.Hostname, a.Version, now); err != nil {
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
	if _, err := s.pool.Exec(ctx, `INSERT INTO nonces (nonce, expires_at) VALUES ($1, $2)`, nonNil(nonce), store.Micro(expiresAt)); err != nil {
		if isUnique(err) {
			return fmt.Errorf("create nonce: %w", store.ErrAlreadyExists)
		}
		return fmt.Errorf("create nonce: %w", err)
	}
	return nil
}

// ConsumeNonce deletes the nonce; it fails with ErrNonceInvalid when the
// nonce was absent or had expired.
func (s *Store) ConsumeNonce(ctx context.Context, nonce []byte, now time.Time) error {
	now = s.orNow(now)
	var expires time.Time
	err := s.pool.QueryRow(ctx, `DELETE FROM nonces WHERE nonce = $1 RETURNING expires_at`, nonce).Scan(&expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("consume nonce: %w", store.ErrNonceInvalid)
	}
	if err != nil {
		return fmt.Errorf("consume nonce: %w", err)
	}
	if !now.Before(expires) {
		return fmt.Errorf("consume nonce: expired: %w", store.ErrNonceInvalid)
	}
	return nil
}

const agentColumns = `id, environment_id, tenant, public_key, hostname, version, enrolled_at, last_seen_at, disabled, disabled_at`

func scanAgent(row pgx.Row) (store.Agent, error) {
	var (
		a                  store.Agent
		lastSeen, disabled pgtype.Timestamptz
	)
	if err := row.Scan(&a.ID, &a.EnvironmentID, &a.Tenant, &a.PublicKey, &a.Hostname, &a.Version,
		&a.EnrolledAt, &lastSeen, &a.Disabled, &disabled); err != nil {
		return store.Agent{}, err
	}
	a.EnrolledAt = a.EnrolledAt.UTC()
	a.LastSeenAt = fromTS(lastSeen)
	a.DisabledAt = fromTS(disabled)
	return a, nil
}

// GetAgent returns the agent with id.
func (s *Store) GetAgent(ctx context.Context, id string) (store.Agent, error) {
	a, err := scanAgent(s.pool.QueryRow(ctx, `SELECT `+agentColumns+` FROM agents WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Agent{}, fmt.Errorf("get agent %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Agent{}, fmt.Errorf("get agent: %w", err)
	}
	return a, nil
}

// ListAgents lists a tenant's agents, of one environment if envID is set,
// in enrollment order.
func (s *Store) ListAgents(ctx context.Context, tenant, envID string) ([]store.Agent, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+agentColumns+` FROM agents
		WHERE tenant = $1 AND ($2 = '' OR environment_id = $2) ORDER BY enrolled_at, id`, tenant, envID)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Agent, error) { return scanAgent(r) })
	if err != nil {
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
		a, err = scanAgent(tx.QueryRow(ctx, `SELECT `+agentColumns+` FROM agents WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) || err == nil && a.Tenant != tenant {
			return fmt.Errorf("agent %q: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if a.Disabled {
			return nil
		}
		a.Disabled, a.DisabledAt = true, now
		if _, err := tx.Exec(ctx, `UPDATE agents SET disabled = TRUE, disabled_at = $1 WHERE id = $2`, now, id); err != nil {
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
	tag, err := s.pool.Exec(ctx, `UPDATE agents SET last_seen_at = $1, version = CASE WHEN $2 = '' THEN version ELSE $2 END WHERE id = $3`,
		now, version, id)
	if err != nil {
		return fmt.Errorf("touch agent: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("touch agent %q: %w", id, store.ErrNotFound)
	}
	return nil
}
