ALTER TABLE job_attempts RESET (fillfactor);
