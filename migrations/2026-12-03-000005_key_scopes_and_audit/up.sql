-- Keys that can be scoped, named, expired and revoked; who used them last.
-- Existing keys keep what they could do: every tenant scope, and `admin`
-- for admin keys.
ALTER TABLE api_keys
    ADD COLUMN name text NOT NULL DEFAULT '',
    ADD COLUMN scopes text[] NOT NULL DEFAULT '{}',
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN last_used_at timestamptz;
UPDATE api_keys SET scopes = CASE WHEN admin
    THEN '{jobs:read,jobs:write,files,payments:read,payments:write,payments:admin,webhooks:admin,admin}'::text[]
    ELSE '{jobs:read,jobs:write,files,payments:read,payments:write,payments:admin,webhooks:admin}'::text[] END;
ALTER TABLE api_keys DROP COLUMN admin;
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at DESC);

-- Sensitive actions: who (the key, or the operator's CLI), when, what.
CREATE TABLE audit_log (
    id uuid PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    -- The tenant the action concerns (NULL: the whole installation).
    tenant_id uuid REFERENCES tenants (id) ON DELETE SET NULL,
    -- The key that acted (NULL: `peyk-api` on the command line).
    actor_key_id uuid REFERENCES api_keys (id) ON DELETE SET NULL,
    -- The key's prefix or `cli`: kept when the key row goes.
    actor text NOT NULL,
    action text NOT NULL,
    -- What was acted on: a key, job, file, endpoint or account id or name.
    target text,
    details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_newest ON audit_log (id DESC);
CREATE INDEX audit_log_by_tenant ON audit_log (tenant_id, id DESC);
