package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/outposthq/outpost/internal/store"
)

func listKeys(ctx context.Context, q querier, envID string) ([]store.EnvironmentKey, error) {
	rows, err := q.QueryContext(ctx, `SELECT environment_id, version, recipient, fingerprint, retired, registered_at, registered_by
		FROM environment_keys WHERE environment_id = ? ORDER BY version`, envID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.EnvironmentKey
	for rows.Next() {
		var (
			k  store.EnvironmentKey
			at int64
		)
		if err := rows.Scan(&k.EnvironmentID, &k.Version, &k.Recipient, &k.Fingerprint, &k.Retired, &at, &k.RegisteredBy); err != nil {
			return nil, err
		}
		k.RegisteredAt = time.UnixMicro(at).UTC()
		out = append(out, k)
	}
	return out, rows.Err()
}

// RegisterEnvironmentKeys adds the key versions not yet known and marks
// retired ones, or changes nothing on ErrKeyMismatch.
func (s *Store) RegisterEnvironmentKeys(ctx context.Context, tenant, envID string, keys []store.EnvironmentKey, actor string, now time.Time) error {
	now = s.orNow(now)
	_, err := s.write(ctx, "register environment keys", func(tx *tx) error {
		env, err := tenantEnv(ctx, tx, tenant, envID)
		if err != nil {
			return err
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
				if _, err := tx.ExecContext(ctx, `INSERT INTO environment_keys
					(environment_id, version, recipient, fingerprint, retired, registered_at, registered_by)
					VALUES (?, ?, ?, ?, ?, ?, ?)`,
					k.EnvironmentID, k.Version, k.Recipient, k.Fingerprint, k.Retired, k.RegisteredAt.UnixMicro(), k.RegisteredBy); err != nil {
					return fmt.Errorf("insert key version %d: %w", k.Version, err)
				}
			} else if c.Retire {
				if _, err := tx.ExecContext(ctx, `UPDATE environment_keys SET retired = 1 WHERE environment_id = ? AND version = ?`,
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
	if _, err := tenantEnv(ctx, s.r, tenant, envID); err != nil {
		return nil, fmt.Errorf("list environment keys: %w", err)
	}
	keys, err := listKeys(ctx, s.r, envID)
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

func scanSecret(row interface{ Scan(...any) error }) (store.SecretVersion, error) {
	var (
		v           store.SecretVersion
		keys, state string
		created     int64
	)
	if err := row.Scan(&v.Tenant, &v.EnvironmentID, &v.Namespace, &v.Name, &v.Version, &keys, &v.KeyVersion, &v.KeyFingerprint,
		&v.Sealed, &v.Deleted, &v.Adopt, &v.TaskID, &v.CreatedBy, &created, &state); err != nil {
		return store.SecretVersion{}, err
	}
	var err error
	if v.Keys, err = decodeList(keys); err != nil {
		return store.SecretVersion{}, fmt.Errorf("secret %s/%s keys: %w", v.Namespace, v.Name, err)
	}
	if len(v.Sealed) == 0 {
		v.Sealed = nil
	}
	v.TaskState = store.TaskState(state)
	v.CreatedAt = time.UnixMicro(created).UTC()
	return v, nil
}

func listSecrets(ctx context.Context, q querier, query string, args ...any) ([]store.SecretVersion, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.SecretVersion
	for rows.Next() {
		v, err := scanSecret(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// PutSecretVersion stores v as the secret's next version and enqueues
// task, which writes or deletes it, in one transaction. A repeat of the
// same task returns the version it stored the first time.
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
		var fresh bool
		if nt, fresh, err = insertTask(ctx, tx, task, actor, now); err != nil {
			return err
		}
		if !fresh {
			out, err = scanSecret(tx.QueryRowContext(ctx, `SELECT `+secretColumns+secretFrom+`WHERE v.tenant = ? AND v.task_id = ?`,
				v.Tenant, nt.ID))
			if errors.Is(err, sql.ErrNoRows) || (err == nil && (out.EnvironmentID != v.EnvironmentID || out.Namespace != v.Namespace || out.Name != v.Name)) {
				return fmt.Errorf("task %q: %w", nt.ID, store.ErrIdempotencyMismatch)
			}
			return err
		}
		var previous int64
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM secret_versions
			WHERE tenant = ? AND environment_id = ? AND namespace = ? AND name = ?`,
			v.Tenant, v.EnvironmentID, v.Namespace, v.Name).Scan(&previous); err != nil {
			return fmt.Errorf("read last version: %w", err)
		}
		out = store.NewSecretVersion(v, previous, nt.ID, actor, now)
		if _, err := tx.ExecContext(ctx, `INSERT INTO secret_versions (tenant, environment_id, namespace, name, version, keys,
			key_version, key_fingerprint, sealed, deleted, adopt, task_id, created_by, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			out.Tenant, out.EnvironmentID, out.Namespace, out.Name, out.Version, encodeList(out.Keys),
			out.KeyVersion, out.KeyFingerprint, out.Sealed, out.Deleted, out.Adopt, out.TaskID, out.CreatedBy, out.CreatedAt.UnixMicro()); err != nil {
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
	out, err := listSecrets(ctx, s.r, `SELECT `+secretColumns+secretFrom+`
		WHERE v.tenant = ? AND v.environment_id = ? AND v.version = (SELECT max(w.version) FROM secret_versions w
			WHERE w.tenant = v.tenant AND w.environment_id = v.environment_id AND w.namespace = v.namespace AND w.name = v.name)
		ORDER BY v.namespace, v.name`, tenant, envID)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	return out, nil
}

// SecretHistory returns the secret's versions, newest first.
func (s *Store) SecretHistory(ctx context.Context, tenant, envID, namespace, name string) ([]store.SecretVersion, error) {
	out, err := listSecrets(ctx, s.r, `SELECT `+secretColumns+secretFrom+`
		WHERE v.tenant = ? AND v.environment_id = ? AND v.namespace = ? AND v.name = ? ORDER BY v.version DESC`,
		tenant, envID, namespace, name)
	if err != nil {
		return nil, fmt.Errorf("secret history: %w", err)
	}
	return out, nil
}
