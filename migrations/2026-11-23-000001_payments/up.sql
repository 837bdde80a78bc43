-- Payments: a tenant's gateway accounts, the payments Peyk verifies, and
-- every inbound event (gateway callbacks, other providers' webhooks) as it
-- arrived.

-- One account per tenant and gateway. `credentials` holds what the gateway
-- authenticates with (merchant id, API key, Stripe secret key and webhook
-- signing secret); the API never shows it back.
CREATE TABLE payment_accounts (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    gateway      text NOT NULL CHECK (gateway IN ('zarinpal', 'idpay', 'bitpay', 'stripe')),
    credentials  jsonb NOT NULL,
    sandbox      boolean NOT NULL DEFAULT false,
    -- Where a payer's browser goes after a gateway redirected it to Peyk.
    return_url   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, gateway)
);

-- One row per gateway reference: the unique key is what makes a payment
-- credited once, however many callbacks and verifications arrive. The
-- outcome columns are written once, by the verification that moves the row
-- out of `pending` (`UPDATE … WHERE status = 'pending'`).
CREATE TABLE payments (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    gateway         text NOT NULL,
    -- Zarinpal authority, IDPay id, BitPay id_get, Stripe PaymentIntent id.
    reference       text NOT NULL,
    order_id        text NOT NULL,
    -- The expected amount, in `currency`'s unit as the tenant stated it:
    -- IRR (Rial) or IRT (Toman) for the Iranian gateways, the smallest unit
    -- (e.g. cents) of a lowercase ISO code for Stripe.
    amount          bigint NOT NULL CHECK (amount > 0),
    currency        text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN
                      ('pending', 'verified', 'already_verified', 'amount_mismatch', 'failed')),
    -- BitPay's trans_id arrives only with the callback.
    trans_id        text,
    gateway_code    text,
    ref_id          text,
    card_mask       text,
    fee             bigint,
    paid_amount     bigint,
    reason          text,
    -- The last time a verification asked the gateway (reconcile waits).
    checked_at      timestamptz,
    finished_at     timestamptz,
    -- Set when the outcome's event (payment.succeeded / payment.failed) is
    -- being published, by whoever holds that duty: the verification that
    -- recorded the outcome, or a later one if publishing failed.
    announced_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, gateway, reference)
);
CREATE INDEX payments_tenant_newest ON payments (tenant_id, id DESC);
CREATE INDEX payments_tenant_order ON payments (tenant_id, order_id);
CREATE INDEX payments_pending ON payments (gateway, tenant_id, checked_at) WHERE status = 'pending';

-- Shared secrets of the providers whose Standard Webhooks a tenant receives
-- through Peyk (POST /v1/inbound/{tenant}/{source}).
CREATE TABLE inbound_sources (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL,
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

-- Every inbound event once: the dedupe key (gateway reference and status,
-- Stripe's event id, the webhook-id) makes a replayed callback a no-op.
CREATE TABLE inbound_events (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    source        text NOT NULL,
    dedupe_key    text NOT NULL,
    event_type    text,
    method        text NOT NULL,
    query         text,
    content_type  text,
    body          text NOT NULL,
    payment_id    uuid,
    -- The verification this event queued, if any.
    job_id        uuid,
    received_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, source, dedupe_key)
);
CREATE INDEX inbound_events_tenant_newest ON inbound_events (tenant_id, id DESC);
