ALTER TABLE jobs DROP COLUMN pipeline_step, DROP COLUMN pipeline_id;
DROP TABLE pipelines;
