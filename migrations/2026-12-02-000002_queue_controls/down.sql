DROP TABLE queue_pauses;
ALTER TABLE tenants DROP COLUMN weight;
ALTER TABLE api_keys DROP COLUMN admin;
