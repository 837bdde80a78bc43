-- Retention and erasure: how long each tenant's content is kept (NULL: the
-- server's default, PEYK_RETENTION_*_DAYS), and what has been erased. An
-- erased row keeps its bare record (ids, type, status, times).
ALTER TABLE tenants
    ADD COLUMN sensitive_retention_days double precision,
    ADD COLUMN content_retention_days double precision,
    ADD COLUMN upload_retention_days double precision,
    ADD COLUMN trail_retention_days double precision;

ALTER TABLE jobs ADD COLUMN erased_at timestamptz;
ALTER TABLE files ADD COLUMN erased_at timestamptz;
ALTER TABLE webhook_messages ADD COLUMN erased_at timestamptz;

-- What the sweeper looks for, per tenant, oldest first. Only finished,
-- unerased rows are in it: a new job adds nothing until it finishes.
CREATE INDEX jobs_to_erase ON jobs (tenant_id, finished_at)
    WHERE erased_at IS NULL AND finished_at IS NOT NULL;
CREATE INDEX job_attempts_errors ON job_attempts (started_at)
    WHERE error_message IS NOT NULL;
CREATE INDEX webhook_messages_to_erase ON webhook_messages (tenant_id, created_at)
    WHERE erased_at IS NULL;
CREATE INDEX sms_outbox_bodies ON sms_outbox (tenant_id, created_at)
    WHERE message IS NOT NULL OR tokens IS NOT NULL;
CREATE INDEX files_to_erase ON files (tenant_id, created_at)
    WHERE erased_at IS NULL;

-- The uploads a job's payload names (transcription's `file_id`, email's
-- attachments): an upload is kept while a job that names it is unfinished,
-- and for the upload retention after the last one finished.
CREATE FUNCTION peyk_job_file_ids(job_type text, payload jsonb) RETURNS uuid[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE job_type
        WHEN 'transcription' THEN ARRAY[(payload ->> 'file_id')::uuid]
        WHEN 'email' THEN ARRAY(
            SELECT (attachment ->> 'file_id')::uuid
            FROM jsonb_array_elements(CASE jsonb_typeof(payload -> 'attachments') WHEN 'array' THEN payload -> 'attachments' ELSE '[]' END) AS attachment
            WHERE attachment ? 'file_id')
    END;
CREATE INDEX jobs_file_ids ON jobs USING gin (peyk_job_file_ids(job_type, payload))
    WHERE job_type IN ('transcription', 'email');

ALTER TABLE pipelines ADD COLUMN erased_at timestamptz;
CREATE INDEX pipelines_to_erase ON pipelines (tenant_id, finished_at)
    WHERE erased_at IS NULL AND finished_at IS NOT NULL;
