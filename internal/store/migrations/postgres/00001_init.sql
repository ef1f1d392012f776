-- Outpost hub schema for PostgreSQL. Unset times are NULL; lists are text
-- arrays.

-- +goose Up
CREATE TABLE tenants (
    name       TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL
);

-- The last event of each tenant's audit chain; writers lock it (FOR UPDATE)
-- as late as possible, seal the next event after it and update it in the
-- same transaction.
CREATE TABLE audit_heads (
    tenant TEXT PRIMARY KEY REFERENCES tenants (name),
    seq    BIGINT NOT NULL,
    hash   TEXT NOT NULL
);

CREATE TABLE audit_events (
    tenant      TEXT NOT NULL REFERENCES tenants (name),
    seq         BIGINT NOT NULL,
    time        TIMESTAMPTZ NOT NULL,
    environment TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    details     TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    PRIMARY KEY (tenant, seq)
);
CREATE INDEX audit_events_action ON audit_events (tenant, action, seq);

CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL REFERENCES tenants (name),
    name       TEXT NOT NULL,
    hash       BYTEA NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ
);

CREATE TABLE environments (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL REFERENCES tenants (name),
    name       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant, name)
);

CREATE TABLE bootstrap_tokens (
    id             TEXT PRIMARY KEY,
    hash           BYTEA NOT NULL UNIQUE,
    environment_id TEXT NOT NULL REFERENCES environments (id),
    created_at     TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    created_by     TEXT NOT NULL,
    used_at        TIMESTAMPTZ,
    used_by        TEXT NOT NULL DEFAULT ''
);

CREATE TABLE agents (
    id             TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id),
    tenant         TEXT NOT NULL REFERENCES tenants (name),
    public_key     BYTEA NOT NULL,
    hostname       TEXT NOT NULL,
    version        TEXT NOT NULL,
    enrolled_at    TIMESTAMPTZ NOT NULL,
    last_seen_at   TIMESTAMPTZ,
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    disabled_at    TIMESTAMPTZ
);
CREATE INDEX agents_tenant ON agents (tenant, environment_id);

CREATE TABLE nonces (
    nonce      BYTEA PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);

-- seq orders tasks: FIFO per conflict key, newest first in listings.
CREATE TABLE tasks (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant           TEXT NOT NULL REFERENCES tenants (name),
    id               TEXT NOT NULL,
    environment_id   TEXT NOT NULL REFERENCES environments (id),
    kind             TEXT NOT NULL,
    spec             BYTEA NOT NULL,
    conflict_keys    TEXT[] NOT NULL,
    artifacts        TEXT[] NOT NULL,
    max_attempts     INTEGER NOT NULL,
    deadline         TIMESTAMPTZ,
    state            TEXT NOT NULL,
    attempt          BIGINT NOT NULL,
    agent_id         TEXT NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    finished_at      TIMESTAMPTZ,
    lease_expires_at TIMESTAMPTZ,
    not_before       TIMESTAMPTZ,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    result           BYTEA,
    error            TEXT NOT NULL DEFAULT '',
    UNIQUE (tenant, id)
);
CREATE INDEX tasks_unfinished ON tasks (environment_id, state, seq) WHERE state IN ('queued', 'leased');
CREATE INDEX tasks_lease ON tasks (lease_expires_at) WHERE state = 'leased';
CREATE INDEX tasks_deadline ON tasks (deadline) WHERE state = 'queued' AND deadline IS NOT NULL;
CREATE INDEX tasks_not_before ON tasks (not_before) WHERE state = 'queued' AND attempt > 0;
CREATE INDEX tasks_finished ON tasks (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX tasks_env_seq ON tasks (tenant, environment_id, seq);
CREATE INDEX tasks_tenant_seq ON tasks (tenant, seq);

-- Which blobs a task references, for blob garbage collection.
CREATE TABLE task_artifacts (
    task_seq BIGINT NOT NULL REFERENCES tasks (seq) ON DELETE CASCADE,
    tenant   TEXT NOT NULL,
    digest   TEXT NOT NULL,
    PRIMARY KEY (task_seq, digest)
);
CREATE INDEX task_artifacts_digest ON task_artifacts (tenant, digest);

-- A blob's content is written as chunks of an upload; it becomes visible
-- only when a blobs row points at the upload, after its digest verified.
CREATE TABLE blob_uploads (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL REFERENCES tenants (name),
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX blob_uploads_created ON blob_uploads (created_at);

CREATE TABLE blob_chunks (
    upload_id TEXT NOT NULL REFERENCES blob_uploads (id) ON DELETE CASCADE,
    idx       INTEGER NOT NULL,
    data      BYTEA NOT NULL,
    PRIMARY KEY (upload_id, idx)
);

CREATE TABLE blobs (
    tenant     TEXT NOT NULL REFERENCES tenants (name),
    digest     TEXT NOT NULL,
    upload_id  TEXT NOT NULL UNIQUE REFERENCES blob_uploads (id),
    size       BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, digest)
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

-- When the last Sweep ran, to wake environments whose retries became
-- runnable since. Sweeps of several replicas serialize on this row.
CREATE TABLE sweeps (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    last_at TIMESTAMPTZ
);
INSERT INTO sweeps (id, last_at) VALUES (1, NULL);

-- +goose Down
DROP TABLE sweeps;
DROP TABLE settings;
DROP TABLE blobs;
DROP TABLE blob_chunks;
DROP TABLE blob_uploads;
DROP TABLE task_artifacts;
DROP TABLE tasks;
DROP TABLE nonces;
DROP TABLE agents;
DROP TABLE bootstrap_tokens;
DROP TABLE environments;
DROP TABLE api_tokens;
DROP TABLE audit_events;
DROP TABLE audit_heads;
DROP TABLE tenants;
