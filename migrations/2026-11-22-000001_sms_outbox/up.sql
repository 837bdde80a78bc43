-- Where SMS goes when no Kavenegar key is configured (development): every
-- message a job would have sent, clearly labelled, readable through
-- GET /v1/sms/outbox. One row per job and receptor, so a retried job is
-- recorded once.
CREATE TABLE sms_outbox (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    job_id      uuid NOT NULL,
    mode        text NOT NULL,
    receptor    text NOT NULL,
    sender      text,
    message     text,
    template    text,
    tokens      jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_id, receptor)
);

CREATE INDEX sms_outbox_tenant_newest ON sms_outbox (tenant_id, created_at DESC, id DESC);
