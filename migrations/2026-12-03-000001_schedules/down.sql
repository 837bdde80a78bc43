DROP INDEX jobs_schedule;
ALTER TABLE jobs DROP COLUMN schedule_id;
DROP TABLE schedule_fires;
DROP TABLE schedules;
