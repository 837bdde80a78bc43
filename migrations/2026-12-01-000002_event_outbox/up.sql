-- Events through a transactional outbox (jobs/src/events/mod.rs): a message
-- is stored in the same transaction as the outcome that causes it, and
-- turned into deliveries afterwards (`dispatched_at`). Until then a relay in
-- every worker picks it up, so a crash between the two loses nothing; each
-- delivery job's idempotency key (message, endpoint) keeps a second
-- dispatch from sending anything twice.
ALTER TABLE webhook_messages ADD COLUMN dispatched_at timestamptz;
UPDATE webhook_messages SET dispatched_at = created_at;
CREATE INDEX webhook_messages_undispatched ON webhook_messages (created_at) WHERE dispatched_at IS NULL;
