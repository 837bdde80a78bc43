DROP INDEX inbound_events_unknown;
DROP INDEX inbound_events_received;
DROP INDEX inbound_events_payment;
UPDATE payments SET trans_id = trans_id_candidates[1] WHERE trans_id IS NULL AND cardinality(trans_id_candidates) > 0;
ALTER TABLE payments DROP COLUMN reversed_from;
ALTER TABLE payments DROP COLUMN callbacks_stored;
ALTER TABLE payments DROP COLUMN verifications_in_window;
ALTER TABLE payments DROP COLUMN recheck_requested;
ALTER TABLE payments DROP COLUMN verifications_window_start;
ALTER TABLE payments DROP COLUMN verification_job_id;
ALTER TABLE payments DROP COLUMN verification_queued_at;
ALTER TABLE payments DROP COLUMN trans_id_candidates;
UPDATE payments SET status = 'failed' WHERE status = 'needs_review';
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check CHECK (status IN
    ('pending', 'verified', 'already_verified', 'amount_mismatch', 'failed'));
