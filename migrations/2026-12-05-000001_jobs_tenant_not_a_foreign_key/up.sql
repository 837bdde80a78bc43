-- `jobs.tenant_id` stops being a foreign key. PostgreSQL checks a foreign
-- key row by row, after the statement: a query on `tenants` and a shared
-- lock on the tenant's row for each job inserted. In a bulk submission
-- (1,000 jobs a statement) that was a quarter of PostgreSQL's time, and
-- every concurrent insert of one tenant locked the same row.
-- Nothing is lost: a job is only ever inserted with the tenant of an
-- authenticated key or of a row that carries it (a pipeline, a schedule,
-- a job), and Peyk never deletes tenants (an operator who does must delete
-- their jobs first; the other tables keep their foreign keys).
ALTER TABLE jobs DROP CONSTRAINT jobs_tenant_id_fkey;
