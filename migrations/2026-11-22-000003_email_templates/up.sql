-- Email templates of a tenant (PUT /v1/email/templates/{name}). A tenant's
-- template overrides the built-in template of the same name and language.
-- html or text may be absent (not both): the worker derives the plain-text
-- part from the HTML, and a template without HTML sends plain text only.
CREATE TABLE email_templates (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    name        text NOT NULL,
    language    text NOT NULL,
    subject     text NOT NULL,
    html        text,
    text        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name, language),
    CHECK (html IS NOT NULL OR text IS NOT NULL)
);
