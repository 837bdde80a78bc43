DROP TABLE tenant_queue_caps;
DROP TABLE queue_pauses;
ALTER TABLE tenants DROP COLUMN burst, DROP COLUMN requests_per_second, DROP COLUMN weight;
ALTER TABLE api_keys DROP COLUMN admin;
