-- Schedules: jobs (or pipelines) submitted at the fire times of a cron
-- expression or a fixed interval, Celery beat's periodic tasks. Any worker
-- may fire a due schedule: it locks the row (SKIP LOCKED), and the fire's
-- row (schedule_id, fire_at) is unique, so a fire time is acted on once
-- across the fleet whatever crashes. Times come from the database's clock.
CREATE TABLE schedules (
    id                    uuid PRIMARY KEY,
    tenant_id             uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                  text NOT NULL,
    -- Exactly one of the two.
    cron                  text,
    every_seconds         integer CHECK (every_seconds >= 1),
    timezone              text NOT NULL,
    calendar              text NOT NULL CHECK (calendar IN ('gregorian', 'persian')),
    -- `every_seconds` counts from here (start_at, else the creation time).
    anchor_at             timestamptz NOT NULL,
    start_at              timestamptz,
    end_at                timestamptz,
    -- What each fire submits: {"job": {...}} or {"pipeline": {"steps": [...]}}.
    target                jsonb NOT NULL,
    overlap               text NOT NULL CHECK (overlap IN ('allow', 'skip', 'queue_one')),
    misfire               text NOT NULL CHECK (misfire IN ('skip', 'run_once', 'run_all')),
    misfire_cap           integer NOT NULL CHECK (misfire_cap BETWEEN 1 AND 1000),
    misfire_grace_seconds integer NOT NULL CHECK (misfire_grace_seconds >= 1),
    paused                boolean NOT NULL DEFAULT false,
    -- The earliest fire time not acted on yet; NULL once past end_at.
    next_fire_at          timestamptz,
    -- overlap = queue_one: the fire waiting for the previous run to end.
    buffered_fire_at      timestamptz,
    last_fire_at          timestamptz,
    last_job_id           uuid,
    last_pipeline_id      uuid,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK ((cron IS NULL) <> (every_seconds IS NULL)),
    CHECK (end_at IS NULL OR start_at IS NULL OR end_at > start_at),
    UNIQUE (tenant_id, name)
);

-- The schedulers' one hot query: the due schedules, earliest first.
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE NOT paused AND next_fire_at IS NOT NULL;
CREATE INDEX schedules_buffered ON schedules (buffered_fire_at) WHERE buffered_fire_at IS NOT NULL AND NOT paused;
CREATE INDEX schedules_tenant_newest ON schedules (tenant_id, id DESC);

-- What happened at each fire time. The primary key is what makes a second
-- firing of the same time impossible.
CREATE TABLE schedule_fires (
    schedule_id uuid NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    fire_at     timestamptz NOT NULL,
    fired_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- submitted | skipped_overlap | buffered | missed | quota_exceeded |
    -- error (the stored job no longer fits a job type: cannot happen for
    -- what the API stored, recorded rather than retried for ever)
    outcome     text NOT NULL CHECK (outcome IN ('submitted', 'skipped_overlap', 'buffered', 'missed', 'quota_exceeded', 'error')),
    -- outcome = missed: how many fire times this row stands for (from fire_at on).
    missed      integer,
    manual      boolean NOT NULL DEFAULT false,
    job_id      uuid,
    pipeline_id uuid,
    PRIMARY KEY (schedule_id, fire_at)
);
CREATE INDEX schedule_fires_age ON schedule_fires (fired_at);

-- Jobs outlive their schedule: no foreign key, the id stays as a record.
ALTER TABLE jobs ADD COLUMN schedule_id uuid;
CREATE INDEX jobs_schedule ON jobs (schedule_id, id DESC) WHERE schedule_id IS NOT NULL;
