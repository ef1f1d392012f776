-- Outpost hub schema for SQLite. Times are microseconds since the Unix
-- epoch (NULL: unset); lists are JSON arrays.

-- +goose Up
CREATE TABLE tenants (
    name       TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);

-- The last event of each tenant's audit chain; the next event is sealed
-- after it and it is updated in the same transaction.
CREATE TABLE audit_heads (
    tenant TEXT PRIMARY KEY REFERENCES tenants (name),
    seq    INTEGER NOT NULL,
    hash   TEXT NOT NULL
);

CREATE TABLE audit_events (
    tenant      TEXT NOT NULL REFERENCES tenants (name),
    seq         INTEGER NOT NULL,
    time        INTEGER NOT NULL,
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
    hash       BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER
);

CREATE TABLE environments (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL REFERENCES tenants (name),
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (tenant, name)
);

CREATE TABLE bootstrap_tokens (
    id             TEXT PRIMARY KEY,
    hash           BLOB NOT NULL UNIQUE,
    environment_id TEXT NOT NULL REFERENCES environments (id),
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    created_by     TEXT NOT NULL,
    used_at        INTEGER,
    used_by        TEXT NOT NULL DEFAULT ''
);

CREATE TABLE agents (
    id             TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id),
    tenant         TEXT NOT NULL REFERENCES tenants (name),
    public_key     BLOB NOT NULL,
    hostname       TEXT NOT NULL,
    version        TEXT NOT NULL,
    enrolled_at    INTEGER NOT NULL,
    last_seen_at   INTEGER,
    disabled       INTEGER NOT NULL DEFAULT 0,
    disabled_at    INTEGER
);
CREATE INDEX agents_tenant ON agents (tenant, environment_id);

CREATE TABLE nonces (
    nonce      BLOB PRIMARY KEY,
    expires_at INTEGER NOT NULL
);

-- seq orders tasks: FIFO per conflict key, newest first in listings.
CREATE TABLE tasks (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant           TEXT NOT NULL REFERENCES tenants (name),
    id               TEXT NOT NULL,
    environment_id   TEXT NOT NULL REFERENCES environments (id),
    kind             TEXT NOT NULL,
    spec             BLOB NOT NULL,
    conflict_keys    TEXT NOT NULL,
    artifacts        TEXT NOT NULL,
    max_attempts     INTEGER NOT NULL,
    deadline         INTEGER,
    state            TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    agent_id         TEXT NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    lease_expires_at INTEGER,
    not_before       INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    result           BLOB,
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
    task_seq INTEGER NOT NULL REFERENCES tasks (seq) ON DELETE CASCADE,
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
    created_at INTEGER NOT NULL
);
CREATE INDEX blob_uploads_created ON blob_uploads (created_at);

CREATE TABLE blob_chunks (
    upload_id TEXT NOT NULL REFERENCES blob_uploads (id) ON DELETE CASCADE,
    idx       INTEGER NOT NULL,
    data      BLOB NOT NULL,
    PRIMARY KEY (upload_id, idx)
);

CREATE TABLE blobs (
    tenant     TEXT NOT NULL REFERENCES tenants (name),
    digest     TEXT NOT NULL,
    upload_id  TEXT NOT NULL UNIQUE REFERENCES blob_uploads (id),
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, digest)
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

-- When the last Sweep ran, to wake environments whose retries became
-- runnable since.
CREATE TABLE sweeps (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    last_at INTEGER
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
