-- Outbound webhooks of a tenant: the endpoints that want its events, every
-- event published (a message, delivered to each matching endpoint under the
-- same `webhook-id`), and every delivery attempt with what the endpoint said.

CREATE TABLE webhook_endpoints (
    id                          uuid PRIMARY KEY,
    tenant_id                   uuid NOT NULL REFERENCES tenants (id),
    url                         text NOT NULL,
    description                 text,
    -- Event types wanted; empty: every type.
    event_types                 text[] NOT NULL DEFAULT '{}',
    enabled                     boolean NOT NULL DEFAULT true,
    -- `whsec_…`. Kept as given: signing needs the secret itself.
    secret                      text NOT NULL,
    -- The secret before the last rotation, also signed with until it expires.
    previous_secret             text,
    previous_secret_expires_at  timestamptz,
    -- Start of the current run of failed attempts (NULL after a success);
    -- an endpoint failing for longer than the threshold is disabled.
    failing_since               timestamptz,
    disabled_reason             text,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, created_at);

CREATE TABLE webhook_messages (
    -- `msg_` + a UUIDv7 in hex: sorts by time, so it doubles as the cursor.
    id          text PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    event_type  text NOT NULL,
    -- The body every endpoint receives: {type, timestamp, data}.
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_messages_tenant ON webhook_messages (tenant_id, id DESC);
CREATE INDEX webhook_messages_tenant_type ON webhook_messages (tenant_id, event_type, id DESC);

CREATE TABLE webhook_attempts (
    id                bigserial PRIMARY KEY,
    message_id        text NOT NULL REFERENCES webhook_messages (id) ON DELETE CASCADE,
    endpoint_id       uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    -- The `webhook_delivery` job that made the attempt.
    job_id            uuid NOT NULL,
    attempt           integer NOT NULL,
    -- NULL when no answer came (timeout, refused connection).
    status_code       integer,
    latency_ms        double precision NOT NULL,
    response_excerpt  text,
    -- NULL on success.
    error_code        text,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id DESC);
CREATE INDEX webhook_attempts_message ON webhook_attempts (message_id, id);
