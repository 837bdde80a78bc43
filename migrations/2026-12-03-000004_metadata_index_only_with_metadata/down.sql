DROP INDEX jobs_metadata;
CREATE INDEX jobs_metadata ON jobs USING gin (metadata jsonb_path_ops);
