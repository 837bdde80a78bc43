-- Uploaded files (audio for transcription, attachments). The bytes live in
-- the file store (local disk or S3) under files/{tenant_id}/{id}; this row
-- is what the API lists and what job submissions are checked against.
CREATE TABLE files (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    filename         text NOT NULL,
    content_type     text,
    size_bytes       bigint NOT NULL CHECK (size_bytes >= 0),
    sha256           bytea NOT NULL,
    -- Seconds of audio when the upload is audio; NULL otherwise.
    duration_seconds double precision,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX files_tenant_newest ON files (tenant_id, created_at DESC, id DESC);
