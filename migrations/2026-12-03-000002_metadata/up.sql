-- Metadata: a small object of string values a client puts on a job or a
-- pipeline to find it again from its own records (`{"appointment": "4242"}`),
-- filtered with `GET /v1/jobs?metadata[appointment]=4242`. A default on ADD
-- COLUMN is stored once in the catalogue, so this is instant on a large
-- table; the GIN index (jsonb_path_ops: one hashed entry per key and value)
-- answers the containment filter on millions of rows.
ALTER TABLE jobs ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}';
ALTER TABLE pipelines ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}';
CREATE INDEX jobs_metadata ON jobs USING gin (metadata jsonb_path_ops);
