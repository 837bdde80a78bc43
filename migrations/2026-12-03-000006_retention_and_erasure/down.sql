DROP INDEX pipelines_to_erase;
ALTER TABLE pipelines DROP COLUMN erased_at;
DROP INDEX jobs_file_ids;
DROP FUNCTION peyk_job_file_ids(text, jsonb);
DROP INDEX files_to_erase;
DROP INDEX sms_outbox_bodies;
DROP INDEX webhook_messages_to_erase;
DROP INDEX job_attempts_errors;
DROP INDEX jobs_to_erase;
ALTER TABLE webhook_messages DROP COLUMN erased_at;
ALTER TABLE files DROP COLUMN erased_at;
ALTER TABLE jobs DROP COLUMN erased_at;
ALTER TABLE tenants
    DROP COLUMN sensitive_retention_days,
    DROP COLUMN content_retention_days,
    DROP COLUMN upload_retention_days,
    DROP COLUMN trail_retention_days;
