DROP TABLE audit_log;
DROP INDEX api_keys_by_tenant;
ALTER TABLE api_keys ADD COLUMN admin boolean NOT NULL DEFAULT false;
UPDATE api_keys SET admin = 'admin' = ANY (scopes);
ALTER TABLE api_keys DROP COLUMN name, DROP COLUMN scopes, DROP COLUMN expires_at, DROP COLUMN last_used_at;
