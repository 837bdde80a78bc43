-- Operators' controls over the shared queues. PostgreSQL is the truth;
-- workers apply what Redis must know (pauses, weights, caps) every few
-- seconds, and the admin API at once.

-- Admin keys reach /v1/admin/*; tenant keys never do.
ALTER TABLE api_keys ADD COLUMN admin boolean NOT NULL DEFAULT false;

ALTER TABLE tenants
    -- A tenant's share of each queue relative to other tenants with work.
    ADD COLUMN weight integer NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 1000),
    -- API requests a second, and the burst; NULL: the settings' defaults.
    ADD COLUMN requests_per_second integer CHECK (requests_per_second > 0),
    ADD COLUMN burst integer CHECK (burst > 0),
    -- Quotas per period (Tehran days and months); NULL: the settings' defaults, 0: none.
    ADD COLUMN jobs_per_day bigint CHECK (jobs_per_day >= 0),
    ADD COLUMN sms_per_day bigint CHECK (sms_per_day >= 0),
    ADD COLUMN audio_minutes_per_month bigint CHECK (audio_minutes_per_month >= 0),
    ADD COLUMN llm_tokens_per_month bigint CHECK (llm_tokens_per_month >= 0);

-- A paused queue (tenant_id NULL) or one tenant paused in a queue.
CREATE TABLE queue_pauses (
    queue text NOT NULL,
    tenant_id uuid REFERENCES tenants (id) ON DELETE CASCADE,
    paused_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (queue, tenant_id)
);

-- At most this many of a tenant's jobs of one queue run at once.
CREATE TABLE tenant_queue_caps (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    queue text NOT NULL,
    max_running integer NOT NULL CHECK (max_running > 0),
    PRIMARY KEY (tenant_id, queue)
);
