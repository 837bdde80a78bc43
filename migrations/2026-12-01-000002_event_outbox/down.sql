DROP INDEX webhook_messages_undispatched;
ALTER TABLE webhook_messages DROP COLUMN dispatched_at;
