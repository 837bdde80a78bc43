-- The console's overview counts each queue's dead letters (dead jobs whose
-- content was not erased) every two seconds for each open console, up to
-- 10,001 each. These indexes hold only those rows (few, and written only
-- when a job dies), so a count reads the index alone, never the table:
-- one tenant's by (tenant_id, job_type), an admin's every tenant's by
-- job_type. Submissions and deliveries never touch them.
CREATE INDEX jobs_dead_letters ON jobs (tenant_id, job_type) WHERE status = 'dead' AND erased_at IS NULL;
CREATE INDEX jobs_dead_letters_by_type ON jobs (job_type) WHERE status = 'dead' AND erased_at IS NULL;
