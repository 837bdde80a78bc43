-- HTTP tasks: a tenant's named targets (`PUT /v1/task-targets/{name}`), the
-- app endpoints that `task` jobs POST their arguments to, signed with the
-- target's `whsec_` secret, under the target's timeout and retry policy.
CREATE TABLE task_targets (
    tenant_id           uuid NOT NULL REFERENCES tenants (id),
    name                text NOT NULL,
    url                 text NOT NULL,
    secret              text NOT NULL,
    timeout_seconds     int4 NOT NULL CHECK (timeout_seconds BETWEEN 1 AND 900),
    max_attempts        int4 NOT NULL CHECK (max_attempts BETWEEN 1 AND 25),
    min_backoff_seconds int4 NOT NULL CHECK (min_backoff_seconds BETWEEN 1 AND 86400),
    max_backoff_seconds int4 NOT NULL CHECK (max_backoff_seconds BETWEEN min_backoff_seconds AND 86400),
    description         text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

-- A job's own callback (`callback_url`, optional `callback_secret` at
-- submission): `{"url", "secret"}`, NULL for most jobs (a NULL column
-- costs a bit in the row's null bitmap, nothing more).
ALTER TABLE jobs ADD COLUMN callback jsonb;

-- A message for one job's callback rather than for the tenant's endpoints:
-- stored with the job's outcome like every event (the outbox), dispatched
-- as one `job_callback` delivery.
ALTER TABLE webhook_messages ADD COLUMN callback_job_id uuid;
