-- Operators' controls over the shared queues. PostgreSQL is the truth;
-- workers apply these to Redis every few seconds (and the admin API at once).

-- Admin keys reach /v1/admin/*; tenant keys never do.
ALTER TABLE api_keys ADD COLUMN admin boolean NOT NULL DEFAULT false;

-- A tenant's share of each queue relative to other tenants with work.
ALTER TABLE tenants ADD COLUMN weight integer NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 1000);

-- A paused queue (tenant_id NULL) or one tenant paused in a queue.
CREATE TABLE queue_pauses (
    queue text NOT NULL,
    tenant_id uuid REFERENCES tenants (id) ON DELETE CASCADE,
    paused_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (queue, tenant_id)
);
