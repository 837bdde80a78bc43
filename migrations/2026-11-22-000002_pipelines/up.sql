-- Pipelines: an ordered list of steps, each run as an ordinary job once the
-- step before it succeeded. `steps` keeps every step as submitted (a step's
-- payload may refer to earlier steps' results); a step's job row exists
-- from the moment it is queued, carrying pipeline_id and its step index.
CREATE TABLE pipelines (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    status          text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
    steps           jsonb NOT NULL,
    current_step    integer NOT NULL DEFAULT 0,
    error_code      text,
    error_message   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);

CREATE INDEX pipelines_tenant_newest ON pipelines (tenant_id, id DESC);
-- The sweeper's catch-up looks only at running pipelines.
CREATE INDEX pipelines_running ON pipelines (updated_at) WHERE status = 'running';

ALTER TABLE jobs ADD COLUMN pipeline_id uuid REFERENCES pipelines (id), ADD COLUMN pipeline_step integer;
CREATE UNIQUE INDEX jobs_pipeline_step ON jobs (pipeline_id, pipeline_step) WHERE pipeline_id IS NOT NULL;
