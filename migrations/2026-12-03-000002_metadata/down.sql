DROP INDEX jobs_metadata;
ALTER TABLE pipelines DROP COLUMN metadata;
ALTER TABLE jobs DROP COLUMN metadata;
