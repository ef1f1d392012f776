package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outposthq/outpost/internal/store"
)

// listKeys reads the environment's keys by version.
func listKeys(ctx context.Context, q querier, envID string) ([]store.EnvironmentKey, error) {
	rows, err := q.Query(ctx, `SELECT environment_id, version, recipient, fingerprint, retired, registered_at, registered_by
		FROM environment_keys WHERE environment_id = $1 ORDER BY version`, envID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.EnvironmentKey, error) {
		var k store.EnvironmentKey
		err := r.Scan(&k.EnvironmentID, &k.Version, &k.Recipient, &k.Fingerprint, &k.Retired, &k.RegisteredAt, &k.RegisteredBy)
		k.RegisteredAt = k.RegisteredAt.UTC()
		return k, err
	})
}

// RegisterEnvironmentKeys adds the key versions not yet known and marks
// retired ones, or changes nothing on ErrKeyMismatch. Registrations of one
// environment take turns on its row.
func (s *Store) RegisterEnvironmentKeys(ctx context.Context, tenant, envID string, keys []store.EnvironmentKey, actor string, now time.Time) error {
	now = s.orNow(now)
	_, err := s.write(ctx, "register environment keys", func(tx *tx) error {
		env, err := tenantEnv(ctx, tx, tenant, envID)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM environments WHERE id = $1 FOR UPDATE`, envID); err != nil {
			return fmt.Errorf("lock environment: %w", err)
		}
		known, err := listKeys(ctx, tx, envID)
		if err != nil {
			return err
		}
		changes, err := store.PlanKeys(known, keys, env, actor, now)
		if err != nil {
			return err
		}
		for _, c := range changes {
			k := c.Key
			if c.Insert {
				if _, err := tx.Exec(ctx, `INSERT INTO environment_keys
					(environment_id, version, recipient, fingerprint, retired, registered_at, registered_by)
					VALUES ($1, $2, $3, $4, $5, $6, $7)`,
					k.EnvironmentID, k.Version, k.Recipient, k.Fingerprint, k.Retired, k.RegisteredAt, k.RegisteredBy); err != nil {
					return fmt.Errorf("insert key version %d: %w", k.Version, err)
				}
			} else if c.Retire {
				if _, err := tx.Exec(ctx, `UPDATE environment_keys SET retired = TRUE WHERE environment_id = $1 AND version = $2`,
					k.EnvironmentID, k.Version); err != nil {
					return fmt.Errorf("retire key version %d: %w", k.Version, err)
				}
			}
			tx.record(*c.Event)
		}
		return nil
	})
	return err
}

// ListEnvironmentKeys returns the environment's keys by version.
func (s *Store) ListEnvironmentKeys(ctx context.Context, tenant, envID string) ([]store.EnvironmentKey, error) {
	if _, err := tenantEnv(ctx, s.pool, tenant, envID); err != nil {
		return nil, fmt.Errorf("list environment keys: %w", err)
	}
	keys, err := listKeys(ctx, s.pool, envID)
	if err != nil {
		return nil, fmt.Errorf("list environment keys: %w", err)
	}
	return keys, nil
}

//nolint:gosec // column names of sealed secret versions, no credential
const secretColumns = `v.tenant, v.environment_id, v.namespace, v.name, v.version, v.keys, v.key_version, v.key_fingerprint,
	v.sealed, v.deleted, v.adopt, v.task_id, v.created_by, v.created_at, coalesce(t.state, '')`

// secretFrom joins each version with the state of its task, which is gone
// once finished tasks are deleted.
const secretFrom = ` FROM secret_versions v LEFT JOIN tasks t ON t.tenant = v.tenant AND t.id = v.task_id `

func scanSecret(row pgx.Row) (store.SecretVersion, error) {
	var (
		v     store.SecretVersion
		state string
	)
	if err := row.Scan(&v.Tenant, &v.EnvironmentID, &v.Namespace, &v.Name, &v.Version, &v.Keys, &v.KeyVersion, &v.KeyFingerprint,
		&v.Sealed, &v.Deleted, &v.Adopt, &v.TaskID, &v.CreatedBy, &v.CreatedAt, &state); err != nil {
		return store.SecretVersion{}, err
	}
	v.Keys = orNil(v.Keys)
	if len(v.Sealed) == 0 {
		v.Sealed = nil
	}
	v.TaskState = store.TaskState(state)
	v.CreatedAt = v.CreatedAt.UTC()
	return v, nil
}

func listSecrets(ctx context.Context, q querier, query string, args ...any) ([]store.SecretVersion, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.SecretVersion, error) { return scanSecret(r) })
}

// PutSecretVersion stores v as the secret's next version and enqueues
// task, which writes or deletes it, in one transaction. A repeat of the
// same task returns the version it stored the first time. Puts into one
// environment take turns on its queue lock, so versions number without
// gaps or collisions.
func (s *Store) PutSecretVersion(ctx context.Context, v store.SecretVersion, task store.Task, actor string) (store.SecretVersion, store.Task, error) {
	if err := store.CheckSecretVersion(v, task); err != nil {
		return store.SecretVersion{}, store.Task{}, fmt.Errorf("put secret version: %w", err)
	}
	now := s.orNow(v.CreatedAt)
	var (
		out store.SecretVersion
		nt  store.Task
	)
	_, err := s.write(ctx, "put secret version", func(tx *tx) error {
		env, err := tenantEnv(ctx, tx, v.Tenant, v.EnvironmentID)
		if err != nil {
			return err
		}
		if err := lockQueue(ctx, tx, v.EnvironmentID); err != nil {
			return err
		}
		var fresh bool
		if nt, fresh, err = insertTask(ctx, tx, task, actor, now); err != nil {
			return err
		}
		if !fresh {
			out, err = scanSecret(tx.QueryRow(ctx, `SELECT `+secretColumns+secretFrom+`WHERE v.tenant = $1 AND v.task_id = $2`,
				v.Tenant, nt.ID))
			if errors.Is(err, pgx.ErrNoRows) || (err == nil && (out.EnvironmentID != v.EnvironmentID || out.Namespace != v.Namespace || out.Name != v.Name)) {
				return fmt.Errorf("task %q: %w", nt.ID, store.ErrIdempotencyMismatch)
			}
			return err
		}
		var previous int64
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM secret_versions
			WHERE tenant = $1 AND environment_id = $2 AND namespace = $3 AND name = $4`,
			v.Tenant, v.EnvironmentID, v.Namespace, v.Name).Scan(&previous); err != nil {
			return fmt.Errorf("read last version: %w", err)
		}
		out = store.NewSecretVersion(v, previous, nt.ID, actor, now)
		if _, err := tx.Exec(ctx, `INSERT INTO secret_versions (tenant, environment_id, namespace, name, version, keys,
			key_version, key_fingerprint, sealed, deleted, adopt, task_id, created_by, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			out.Tenant, out.EnvironmentID, out.Namespace, out.Name, out.Version, nonNil(out.Keys),
			out.KeyVersion, out.KeyFingerprint, out.Sealed, out.Deleted, out.Adopt, out.TaskID, out.CreatedBy, out.CreatedAt); err != nil {
			return fmt.Errorf("insert secret version: %w", err)
		}
		tx.record(store.SecretVersionEvent(out, env.Name, actor))
		return nil
	})
	if err != nil {
		return store.SecretVersion{}, store.Task{}, err
	}
	return out, nt, nil
}

// ListSecrets returns the newest version of each secret of the
// environment, by namespace and name.
func (s *Store) ListSecrets(ctx context.Context, tenant, envID string) ([]store.SecretVersion, error) {
	out, err := listSecrets(ctx, s.pool, `SELECT DISTINCT ON (v.namespace, v.name) `+secretColumns+secretFrom+`
		WHERE v.tenant = $1 AND v.environment_id = $2
		ORDER BY v.namespace, v.name, v.version DESC`, tenant, envID)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	return out, nil
}

// SecretHistory returns the secret's versions, newest first.
func (s *Store) SecretHistory(ctx context.Context, tenant, envID, namespace, name string) ([]store.SecretVersion, error) {
	out, err := listSecrets(ctx, s.pool, `SELECT `+secretColumns+secretFrom+`
		WHERE v.tenant = $1 AND v.environment_id = $2 AND v.namespace = $3 AND v.name = $4 ORDER BY v.version DESC`,
		tenant, envID, namespace, name)
	if err != nil {
		return nil, fmt.Errorf("secret history: %w", err)
	}
	return out, nil
}
