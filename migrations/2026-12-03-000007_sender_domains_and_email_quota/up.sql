-- The domains a tenant may send email from (`from` of its email jobs), and
-- its own cap on email recipients a day (NULL: PEYK_QUOTA_EMAILS_PER_DAY).
ALTER TABLE tenants
    ADD COLUMN sender_domains text[] NOT NULL DEFAULT '{}',
    ADD COLUMN emails_per_day bigint;
