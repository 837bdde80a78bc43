DROP TABLE job_attempts;
DROP TABLE jobs;
DROP TABLE api_keys;
DROP TABLE tenants;
