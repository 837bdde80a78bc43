-- The callback gate (README, "Payments"): one payment's callbacks decided
-- one after another on its locked row, the verification job and the event
-- stored in the same statement. It was sent as raw SQL, which the driver
-- never prepares: PostgreSQL parsed and planned its five CTEs for every
-- callback, about as much work as running it. As a PL/pgSQL function its
-- plan is cached per connection: on the payments benchmark's data (pgbench,
-- 4 clients, 2 cores) 1,426 raw statements a second, 2,069 calls.
CREATE FUNCTION peyk_record_callback(
    p_event_id uuid,
    p_tenant_id uuid,
    p_source text,
    p_dedupe_key text,
    p_event_type text,
    p_method text,
    p_query text,
    p_content_type text,
    p_body text,
    p_payment_id uuid,
    p_job_id uuid,
    p_received_at timestamptz,
    p_job_type text,
    p_job_status text,
    p_job_payload jsonb,
    p_max_attempts integer,
    p_priority smallint,
    p_run_at timestamptz,
    p_queue_task_id text,
    p_verifications_per_minute integer,
    p_events_per_payment integer,
    p_unknown_per_minute bigint,
    p_trans_id text
) RETURNS TABLE (was_recorded boolean, was_queued boolean)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH current AS (
                 -- Locked: callbacks of one payment are decided one after another,
                 -- each on the row as the previous one left it (a locking read
                 -- returns the row's latest version).
                 SELECT p.id, p.status IN ('pending', 'failed') AS may_change,
                        p.verification_job_id IS NOT NULL AND p.verification_queued_at > now() - interval '5 minutes' AS in_flight,
                        (p.verifications_window_start IS NULL OR p.verifications_window_start < now() - interval '1 minute') AS new_window,
                        p.verifications_in_window AS used,
                        p.callbacks_stored < p_events_per_payment AS store
                   FROM payments p
                  WHERE p.id = p_payment_id
                  FOR UPDATE
             ), decided AS (
                 SELECT id, may_change, in_flight, new_window, store,
                        (p_job_id IS NOT NULL AND may_change AND NOT in_flight AND (new_window OR used < p_verifications_per_minute)) AS allowed
                   FROM current
             ), gate AS (
                 UPDATE payments p SET
                        callbacks_stored = p.callbacks_stored + CASE WHEN c.store THEN 1 ELSE 0 END,
                        recheck_requested = p.recheck_requested OR (p_job_id IS NOT NULL AND c.may_change AND c.in_flight),
                        verification_job_id = CASE WHEN c.allowed THEN p_job_id ELSE p.verification_job_id END,
                        verification_queued_at = CASE WHEN c.allowed THEN now() ELSE p.verification_queued_at END,
                        verifications_window_start = CASE WHEN c.allowed AND c.new_window THEN now() ELSE p.verifications_window_start END,
                        verifications_in_window = CASE WHEN NOT c.allowed THEN p.verifications_in_window
                                                       WHEN c.new_window THEN 1 ELSE p.verifications_in_window + 1 END,
                        trans_id_candidates = CASE WHEN p_trans_id IS NULL OR p_trans_id = ANY (p.trans_id_candidates) OR NOT c.may_change
                                                   THEN p.trans_id_candidates
                                                   ELSE (ARRAY[p_trans_id] || p.trans_id_candidates)[1:5] END
                   FROM decided c
                  WHERE p.id = c.id
                 RETURNING c.allowed, c.store
             ), job AS (
                 INSERT INTO jobs (id, tenant_id, job_type, status, payload, max_attempts, priority, run_at, queue_task_id)
                 SELECT p_job_id, p_tenant_id, p_job_type, p_job_status, p_job_payload, p_max_attempts, p_priority, p_run_at, p_queue_task_id FROM gate WHERE gate.allowed
                 RETURNING id
             ), event AS (
                 INSERT INTO inbound_events (id, tenant_id, source, dedupe_key, event_type, method, query, content_type, body, payment_id, job_id, received_at)
                 SELECT p_event_id, p_tenant_id, p_source, p_dedupe_key, p_event_type, p_method, p_query, p_content_type, p_body, p_payment_id, (SELECT id FROM job), p_received_at
                  WHERE CASE WHEN p_payment_id IS NOT NULL
                             THEN EXISTS (SELECT 1 FROM gate WHERE gate.store)
                             WHEN p_unknown_per_minute = 0 THEN true
                             ELSE (SELECT count(*) FROM (SELECT 1 FROM inbound_events e
                                    WHERE e.payment_id IS NULL AND e.tenant_id = p_tenant_id AND e.source = p_source
                                      AND e.received_at > now() - interval '1 minute' LIMIT p_unknown_per_minute) bounded) < p_unknown_per_minute END
                 ON CONFLICT (tenant_id, source, dedupe_key) DO NOTHING
                 RETURNING id
             )
             SELECT EXISTS (SELECT 1 FROM event), EXISTS (SELECT 1 FROM job);
END
$$;
