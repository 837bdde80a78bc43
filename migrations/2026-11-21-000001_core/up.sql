-- Peyk's core tables. The `jobs` row is the truth a user sees; Redis only holds
-- what is waiting and in flight and can be rebuilt from these rows.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name <> ''),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- API keys are stored as SHA-256 hashes: the keys are 32 random bytes, so a
-- fast hash is enough (nothing to brute-force) and lookups stay O(1).
CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    key_hash    bytea NOT NULL UNIQUE,
    key_prefix  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE jobs (
    id               uuid PRIMARY KEY,              -- UUIDv7: time-ordered, so "newest first" is "id DESC"
    tenant_id        uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    job_type         text NOT NULL,
    status           text NOT NULL CHECK (status IN
                       ('queued', 'scheduled', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    payload          jsonb NOT NULL,
    result           jsonb,
    error_code       text,
    error_message    text,
    progress         smallint CHECK (progress BETWEEN 0 AND 100),
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL CHECK (max_attempts >= 1),
    priority         smallint NOT NULL DEFAULT 0,
    idempotency_key  text,
    request_hash     bytea,
    run_at           timestamptz NOT NULL,
    -- The apalis task id that currently stands for this job in Redis; the
    -- sweeper re-pushes the job when that task is gone.
    queue_task_id    text,
    -- The worker process running the job and how long its claim holds; a
    -- claim that is not renewed expires, and the job runs again elsewhere.
    locked_by        text,
    lease_until      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX jobs_tenant_idempotency_key ON jobs (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Listing is newest first per tenant; `type`/`status` filters walk this index.
-- (Separate type and status indexes cost ~15 % of submission throughput, since
-- every insert and every status change must update them.)
CREATE INDEX jobs_tenant_newest ON jobs (tenant_id, id DESC);
-- Failures are rare among millions of jobs, and what operators list and alert
-- on: a partial index keeps those queries fast at no cost to the hot path.
CREATE INDEX jobs_tenant_failures ON jobs (tenant_id, id DESC) INCLUDE (job_type) WHERE status IN ('failed', 'dead');
-- For the sweeper: waiting jobs and expired claims.
CREATE INDEX jobs_waiting ON jobs (id) WHERE status IN ('queued', 'scheduled');
CREATE INDEX jobs_running_lease ON jobs (lease_until) WHERE status = 'running';

CREATE TABLE job_attempts (
    id             bigserial PRIMARY KEY,
    job_id         uuid NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    attempt        integer NOT NULL,
    worker         text NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    -- NULL while running; then succeeded | failed | retrying | dead | cancelled | interrupted
    outcome        text,
    error_code     text,
    error_message  text
);
CREATE INDEX job_attempts_job ON job_attempts (job_id, id);
