DROP TABLE tenant_queue_caps;
DROP TABLE queue_pauses;
ALTER TABLE tenants DROP COLUMN llm_tokens_per_month, DROP COLUMN audio_minutes_per_month, DROP COLUMN sms_per_day,
    DROP COLUMN jobs_per_day, DROP COLUMN burst, DROP COLUMN requests_per_second, DROP COLUMN weight;
ALTER TABLE api_keys DROP COLUMN admin;
