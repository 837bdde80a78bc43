ALTER TABLE webhook_messages DROP COLUMN callback_job_id;
ALTER TABLE jobs DROP COLUMN callback;
DROP TABLE task_targets;
