-- Releases (current state and immutable revisions), environment keys
-- (public halves only) and sealed secret versions.

-- +goose Up
-- task_id and applied_task_id name tasks without a foreign key: finished
-- tasks are deleted after a while, releases stay. delete_requested keeps a
-- release whose delete task failed out of the desired state.
CREATE TABLE releases (
    tenant           TEXT NOT NULL REFERENCES tenants (name),
    environment_id   TEXT NOT NULL REFERENCES environments (id),
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL,
    mode             TEXT NOT NULL,
    revision         INTEGER NOT NULL,
    applied_revision INTEGER NOT NULL DEFAULT 0,
    applied_task_id  TEXT NOT NULL DEFAULT '',
    sync             TEXT NOT NULL,
    last_error       TEXT NOT NULL DEFAULT '',
    drift            TEXT NOT NULL DEFAULT '[]',
    drift_corrected  INTEGER NOT NULL DEFAULT 0,
    drift_at         INTEGER,
    task_id          TEXT NOT NULL,
    delete_requested INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant, environment_id, name)
);
-- Settling a release when its task ends finds it by task.
CREATE INDEX releases_task ON releases (tenant, task_id);

CREATE TABLE release_revisions (
    tenant           TEXT NOT NULL,
    environment_id   TEXT NOT NULL,
    release          TEXT NOT NULL,
    revision         INTEGER NOT NULL,
    kind             TEXT NOT NULL,
    spec             BLOB NOT NULL,
    artifacts        TEXT NOT NULL,
    mode             TEXT NOT NULL,
    ignore_rules     TEXT NOT NULL,
    digest           TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    created_by       TEXT NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    rolled_back_from INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, environment_id, release, revision),
    FOREIGN KEY (tenant, environment_id, release) REFERENCES releases (tenant, environment_id, name) ON DELETE CASCADE
);

-- Which blobs a revision references: blob garbage collection keeps them
-- while the revision exists, so agents can reconcile and roll back to it.
CREATE TABLE release_artifacts (
    tenant         TEXT NOT NULL,
    environment_id TEXT NOT NULL,
    release        TEXT NOT NULL,
    revision       INTEGER NOT NULL,
    digest         TEXT NOT NULL,
    PRIMARY KEY (tenant, environment_id, release, revision, digest),
    FOREIGN KEY (tenant, environment_id, release, revision)
        REFERENCES release_revisions (tenant, environment_id, release, revision) ON DELETE CASCADE
);
CREATE INDEX release_artifacts_digest ON release_artifacts (tenant, digest);

CREATE TABLE environment_keys (
    environment_id TEXT NOT NULL REFERENCES environments (id),
    version        INTEGER NOT NULL,
    recipient      TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    retired        INTEGER NOT NULL DEFAULT 0,
    registered_at  INTEGER NOT NULL,
    registered_by  TEXT NOT NULL,
    PRIMARY KEY (environment_id, version)
);

-- task_id names the task writing or deleting the version (no foreign key,
-- as for releases).
CREATE TABLE secret_versions (
    tenant          TEXT NOT NULL REFERENCES tenants (name),
    environment_id  TEXT NOT NULL REFERENCES environments (id),
    namespace       TEXT NOT NULL,
    name            TEXT NOT NULL,
    version         INTEGER NOT NULL,
    keys            TEXT NOT NULL,
    key_version     INTEGER NOT NULL,
    key_fingerprint TEXT NOT NULL,
    sealed          BLOB,
    deleted         INTEGER NOT NULL DEFAULT 0,
    adopt           INTEGER NOT NULL DEFAULT 0,
    task_id         TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant, environment_id, namespace, name, version)
);
CREATE INDEX secret_versions_task ON secret_versions (tenant, task_id);

-- +goose Down
DROP TABLE secret_versions;
DROP TABLE environment_keys;
DROP TABLE release_artifacts;
DROP TABLE release_revisions;
DROP TABLE releases;
