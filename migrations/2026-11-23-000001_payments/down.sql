DROP TABLE inbound_events;
DROP TABLE inbound_sources;
DROP TABLE payments;
DROP TABLE payment_accounts;
