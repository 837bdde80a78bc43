-- Payments that hold under forged callbacks (see jobs/src/payments/mod.rs).

-- needs_review: the gateway said paid but gave no amount to compare, and had
-- no inquiry that gives one; never credited until a person looks.
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check CHECK (status IN
    ('pending', 'verified', 'already_verified', 'amount_mismatch', 'failed', 'needs_review'));

-- BitPay trans_ids that callbacks brought, newest first, at most 5. Anyone
-- who knows a payment's id_get can send one, so none is trusted: a
-- verification tries each, and `trans_id` is only ever the one that verified.
ALTER TABLE payments ADD COLUMN trans_id_candidates text[] NOT NULL DEFAULT '{}';
UPDATE payments SET trans_id_candidates = ARRAY[trans_id], trans_id = NULL
 WHERE trans_id IS NOT NULL AND status = 'pending';

-- The verification a callback queued last, and when: until it ends (it
-- clears the id) — or 5 minutes have passed, should it have died — a
-- callback queues no other (one in flight per payment).
ALTER TABLE payments ADD COLUMN verification_job_id uuid;
ALTER TABLE payments ADD COLUMN verification_queued_at timestamptz;
-- A callback came while a verification was in flight: that verification
-- asks the gateway once more before it concludes "not paid yet" (the real
-- callback may have come while a forged one's verification ran).
ALTER TABLE payments ADD COLUMN recheck_requested boolean NOT NULL DEFAULT false;
-- Verifications callbacks queued in the minute that began at
-- verifications_window_start (a few per minute at most).
ALTER TABLE payments ADD COLUMN verifications_window_start timestamptz;
ALTER TABLE payments ADD COLUMN verifications_in_window integer NOT NULL DEFAULT 0;
-- The outcome a later verification reversed ('failed' → paid): shown, and alerted on.
ALTER TABLE payments ADD COLUMN reversed_from text;

-- Callbacks stored for this payment: at most PEYK_CALLBACK_EVENTS_PER_PAYMENT.
ALTER TABLE payments ADD COLUMN callbacks_stored integer NOT NULL DEFAULT 0;
UPDATE payments SET callbacks_stored = (SELECT count(*) FROM inbound_events e WHERE e.payment_id = payments.id);

-- Inbound events of a payment, and pruning by age.
CREATE INDEX inbound_events_payment ON inbound_events (payment_id) WHERE payment_id IS NOT NULL;
CREATE INDEX inbound_events_received ON inbound_events (received_at);
-- Unknown-payment callbacks are sampled per tenant and gateway per minute.
CREATE INDEX inbound_events_unknown ON inbound_events (tenant_id, source, received_at) WHERE payment_id IS NULL;
