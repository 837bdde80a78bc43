-- A payment row is updated several times in its life; each callback's gate
-- (verification_job_id, the window counters, callbacks_stored) is the
-- frequent one. Those columns are in no index, so with room left on the
-- row's page PostgreSQL updates the row in place (a HOT update: no new
-- entries in the table's five indexes, a fraction of the WAL). With packed
-- pages (the default fillfactor 100) every such update moved the row to
-- another page and into every index, which is what the callback path's
-- p99 paid for (README, "Benchmarks").
ALTER TABLE payments SET (fillfactor = 70);
