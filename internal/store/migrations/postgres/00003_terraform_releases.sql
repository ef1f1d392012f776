-- Terraform releases: a revision keeps the plan of its last task (a JSON
-- store.PlanSummary) and the module's outputs once applied (a JSON object),
-- NULL for other kinds and before a task ended. A release's sync may now be
-- 'awaiting_approval' (sync has no CHECK constraint to widen).

-- +goose Up
ALTER TABLE release_revisions ADD COLUMN plan JSONB;
ALTER TABLE release_revisions ADD COLUMN outputs JSONB;

-- +goose Down
ALTER TABLE release_revisions DROP COLUMN outputs;
ALTER TABLE release_revisions DROP COLUMN plan;
