ALTER TABLE tenants DROP COLUMN sender_domains, DROP COLUMN emails_per_day;
