-- `job_attempts.job_id` stops being a foreign key. PostgreSQL checks a
-- foreign key row by row, after the statement: a query on `jobs` for each
-- attempt the claim statement opens, a fifth of PostgreSQL's time while a
-- worker delivers webhook jobs (2026-12-06, `bench/run.sh` under `perf`).
-- Nothing is lost: an attempt is only ever inserted by that statement, for
-- the job row it holds locked, and the one statement that deletes jobs
-- (a schedule's fires undone, `queries::schedules::unstage`) deletes only
-- jobs that have not run, and their attempts with them.
ALTER TABLE job_attempts DROP CONSTRAINT job_attempts_job_id_fkey;
