-- The console benchmark's data (bench/console.sh): :jobs jobs over the last
-- 30 days across four tenants, as the API and the worker would have left
-- them, with a sample of their attempts, and the bench tenant's webhook
-- endpoints, messages and attempts, payments and their callbacks.
--   psql -v jobs=N -v t1=NAME -v t2=NAME -v t3=NAME -v t4=NAME -f bench/console-seed.sql
-- t1 is the bench tenant (70 % of the jobs), then 15 %, 10 % and 5 %. The
-- tenants exist already (`peyk-api create-key` made them).
--
-- Ids are UUIDv7 made from the row's millisecond (version nibble 7, variant
-- bits 10, the row's number in the last 15 hex digits so that they are
-- unique), in the order of the series: the console pages by id and reads
-- the creation time from it. Random draws come from a fixed seed, so every
-- run seeds the same data.
\set ON_ERROR_STOP on
\set QUIET on
SET client_min_messages = warning;
-- One transaction, loaded at once: no commit to wait for per row.
SET synchronous_commit = off;
SET maintenance_work_mem = '256MB';
SET work_mem = '64MB';

SELECT id AS t1_id FROM tenants WHERE name = :'t1' \gset
SELECT id AS t2_id FROM tenants WHERE name = :'t2' \gset
SELECT id AS t3_id FROM tenants WHERE name = :'t3' \gset
SELECT id AS t4_id FROM tenants WHERE name = :'t4' \gset
SELECT (extract(epoch FROM now()) * 1000)::bigint AS now_ms \gset

-- The UUIDv7 of millisecond `ms` with `n` in its random bits.
CREATE FUNCTION pg_temp.uuid7(ms bigint, r integer, n bigint) RETURNS uuid
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (lpad(to_hex(ms), 12, '0') || '7' || lpad(to_hex(r & 4095), 3, '0') || '8' || lpad(to_hex(n), 15, '0'))::uuid;

SELECT setseed(0.42) AS seeded \gset

BEGIN;

-- Jobs. Each layer is fenced (OFFSET 0) so that each random() is drawn once a row.
INSERT INTO jobs (id, tenant_id, job_type, status, payload, result, error_code, error_message, attempts, max_attempts,
                  priority, idempotency_key, run_at, queue_task_id, locked_by, lease_until, created_at, started_at,
                  finished_at, updated_at, metadata)
SELECT pg_temp.uuid7(ms, (r_bits * 4095)::int, g),
       tenant_id, job_type, status, payload,
       CASE WHEN status = 'succeeded' THEN CASE job_type
           WHEN 'webhook' THEN jsonb_build_object('status_code', 200, 'latency_ms', round((40 + r_dur * 400)::numeric, 1),
                                                  'response_excerpt', '{"ok":true}', 'message_id', 'msg_' || replace(pg_temp.uuid7(ms, 0, g)::text, '-', ''))
           WHEN 'sms' THEN jsonb_build_object('provider', 'kavenegar', 'mode', payload ->> 'mode', 'cost_rial', 1200,
                                              'messages', jsonb_build_array(jsonb_build_object('messageid', 80000000 + g, 'status', 1,
                                                  'receptor', coalesce(payload ->> 'receptor', payload -> 'receptors' ->> 0))))
           WHEN 'email' THEN jsonb_build_object('message_id', '<' || g || '.bench@peyk.local>', 'accepted', payload -> 'to',
                                                'latency_ms', round((200 + r_dur * 800)::numeric), 'smtp_code', 250, 'smtp_reply', '2.0.0 Ok: queued')
           WHEN 'payment_verification' THEN jsonb_build_object('payment_id', pg_temp.uuid7(ms, 1, g), 'status', 'verified', 'paid', true,
                                                               'order_id', payload ->> 'order_id', 'ref_id', (100000 + g)::text, 'duplicate', false)
           WHEN 'transcription' THEN jsonb_build_object('text', 'سلام، وقت بخیر. از دیروز سردرد دارم و کمی تب.', 'language', 'fa',
                                                        'duration', round((20 + r_dur * 200)::numeric, 1))
           ELSE jsonb_build_object('analysis_type', 'triage', 'language', 'fa', 'model', 'qwen2.5-7b-instruct',
                                   'output', jsonb_build_object('urgency', 'urgent', 'reasons', jsonb_build_array('درد قفسه سینه', 'تنگی نفس')),
                                   'disclaimer', 'برای تصمیم بالینی جایگزین پزشک نیست.')
           END END,
       error_code, error_message,
       CASE status WHEN 'succeeded' THEN CASE WHEN r_dur < 0.05 THEN 2 ELSE 1 END
                   WHEN 'dead' THEN max_attempts
                   WHEN 'failed' THEN 1 WHEN 'running' THEN 1 WHEN 'scheduled' THEN 1 ELSE 0 END,
       max_attempts, 0,
       CASE WHEN r_key < 0.10 THEN 'ik-' || g END,
       created_at,
       CASE WHEN status IN ('queued', 'scheduled', 'running') THEN 'bench-' || g END,
       CASE WHEN status = 'running' THEN 'bench-worker-1' END,
       CASE WHEN status = 'running' THEN now() + interval '5 minutes' END,
       created_at, started_at, finished_at,
       coalesce(finished_at, started_at, created_at),
       CASE WHEN r_key > 0.98 THEN jsonb_build_object('appointment', (g % 100000)::text) ELSE '{}' END
  FROM (
    SELECT *,
           CASE WHEN status IN ('succeeded', 'failed', 'dead', 'cancelled', 'running', 'scheduled') THEN created_at + interval '40 ms' END AS started_at,
           CASE WHEN status IN ('succeeded', 'failed', 'cancelled')
                THEN least(now(), created_at + make_interval(secs => 0.04 + CASE job_type WHEN 'transcription' THEN 20 + r_dur * 100
                                                                          WHEN 'medical_analysis' THEN 4 + r_dur * 20
                                                                          ELSE 0.1 + r_dur END))
                WHEN status = 'dead' THEN least(now(), created_at + make_interval(mins => max_attempts * 3)) END AS finished_at,
           CASE WHEN status IN ('dead', 'failed') THEN CASE job_type
               WHEN 'webhook' THEN CASE status WHEN 'dead' THEN 'http_status' ELSE 'blocked_address' END
               WHEN 'sms' THEN CASE status WHEN 'dead' THEN 'provider_unavailable' ELSE 'invalid_receptor' END
               WHEN 'email' THEN CASE status WHEN 'dead' THEN 'smtp_unavailable' ELSE 'smtp_rejected' END
               WHEN 'payment_verification' THEN CASE status WHEN 'dead' THEN 'gateway_unavailable' ELSE 'not_paid' END
               WHEN 'transcription' THEN CASE status WHEN 'dead' THEN 'worker_lost' ELSE 'decode_failed' END
               ELSE CASE status WHEN 'dead' THEN 'llm_unavailable' ELSE 'invalid_output' END END END AS error_code,
           CASE WHEN status IN ('dead', 'failed') THEN CASE job_type
               WHEN 'webhook' THEN CASE status WHEN 'dead' THEN 'the endpoint answered 503 Service Unavailable'
                                               ELSE 'the address resolves to a private network' END
               WHEN 'sms' THEN CASE status WHEN 'dead' THEN 'Kavenegar did not answer within 30 s'
                                           ELSE 'Kavenegar refused the receptor (411)' END
               WHEN 'email' THEN CASE status WHEN 'dead' THEN 'the relay refused the connection'
                                             ELSE '550 5.1.1 mailbox unavailable' END
               WHEN 'payment_verification' THEN CASE status WHEN 'dead' THEN 'zarinpal: connection timed out'
                                                            ELSE 'zarinpal: -51 payment not successful' END
               WHEN 'transcription' THEN CASE status WHEN 'dead' THEN 'the worker running it stopped answering'
                                                     ELSE 'the upload is not audio Peyk can decode' END
               ELSE CASE status WHEN 'dead' THEN 'the model server did not answer within 120 s'
                                ELSE 'the model''s answer did not match the schema' END END END AS error_message
      FROM (
        SELECT *,
               to_timestamp(ms / 1000.0) AS created_at,
               CASE job_type WHEN 'webhook' THEN 8 WHEN 'sms' THEN 6 WHEN 'email' THEN 6 WHEN 'payment_verification' THEN 8
                             WHEN 'transcription' THEN 3 ELSE 5 END AS max_attempts,
               CASE job_type
                   WHEN 'webhook' THEN jsonb_build_object(
                       'url', 'https://' || tenant_name || '.example.ir/hooks/peyk',
                       'body', jsonb_build_object('event', 'appointment.reminder', 'appointment_id', g, 'patient', 'P-' || (g % 50000)),
                       'event_type', 'appointment.reminder')
                   WHEN 'sms' THEN CASE WHEN r_shape < 0.7
                       THEN jsonb_build_object('mode', 'lookup', 'receptor', '0912' || lpad((g % 10000000)::text, 7, '0'),
                                               'template', 'verify', 'token', lpad((g % 10000)::text, 4, '0'))
                       ELSE jsonb_build_object('mode', 'send', 'receptors', jsonb_build_array('0935' || lpad((g % 10000000)::text, 7, '0')),
                                               'message', 'نوبت شما فردا ساعت ۱۰ صبح است. کلینیک')
                       END
                   WHEN 'email' THEN jsonb_build_object('to', jsonb_build_array('patient' || (g % 100000) || '@example.com'),
                                                        'template', 'appointment-reminder', 'language', 'fa',
                                                        'variables', jsonb_build_object('name', 'بیمار ' || (g % 1000), 'time', '۱۰:۳۰'))
                   WHEN 'payment_verification' THEN jsonb_build_object('gateway', 'zarinpal', 'reference', 'A' || lpad(g::text, 35, '0'),
                                                                       'amount', 1500000 + (g % 100) * 10000, 'currency', 'IRR',
                                                                       'order_id', 'order-' || g)
                   WHEN 'transcription' THEN jsonb_build_object('file_id', md5(g::text)::uuid, 'language', 'fa')
                   ELSE jsonb_build_object('text', 'بیمار ۵۴ ساله با درد قفسه سینه از دو روز پیش و تنگی نفس',
                                           'analysis_type', 'triage', 'patient_context', jsonb_build_object('age', 54, 'sex', 'male'))
                   END AS payload,
               -- The last hour is the backlog: waiting, a few running or
               -- waiting for a retry; the rest has finished.
               CASE WHEN ms > :now_ms - 3600000
                    THEN CASE WHEN r_status < 0.01 THEN 'running' WHEN r_status < 0.04 THEN 'scheduled' ELSE 'queued' END
                    ELSE CASE WHEN r_status < 0.960 THEN 'succeeded' WHEN r_status < 0.970 THEN 'failed'
                              WHEN r_status < 0.985 THEN 'dead' ELSE 'cancelled' END
               END AS status
          FROM (
            SELECT *,
                   CASE WHEN r_tenant < 0.70 THEN :'t1_id'::uuid WHEN r_tenant < 0.85 THEN :'t2_id'::uuid
                        WHEN r_tenant < 0.95 THEN :'t3_id'::uuid ELSE :'t4_id'::uuid END AS tenant_id,
                   CASE WHEN r_tenant < 0.70 THEN 'clinic-1' WHEN r_tenant < 0.85 THEN 'clinic-2'
                        WHEN r_tenant < 0.95 THEN 'clinic-3' ELSE 'clinic-4' END AS tenant_name,
                   CASE WHEN r_type < 0.55 THEN 'webhook' WHEN r_type < 0.75 THEN 'sms' WHEN r_type < 0.85 THEN 'email'
                        WHEN r_type < 0.92 THEN 'payment_verification' WHEN r_type < 0.97 THEN 'transcription'
                        ELSE 'medical_analysis' END AS job_type
              FROM (
                -- Evenly over the last 30 days, oldest first, with a little jitter (never out of order).
                SELECT g,
                       :now_ms - 2592000000 + ((g - 1 + random() * 0.9) * (2592000000 - 1000) / :jobs)::bigint AS ms,
                       random() AS r_bits, random() AS r_tenant, random() AS r_type, random() AS r_status,
                       random() AS r_shape, random() AS r_dur, random() AS r_key
                  FROM generate_series(1, :jobs) g
                OFFSET 0
              ) drawn
            OFFSET 0
          ) placed
        OFFSET 0
      ) shaped
    OFFSET 0
  ) timed;

-- Attempts: every attempt of every dead job, and of one finished or running
-- job in ten (by the id's last byte); earlier attempts ended retrying.
INSERT INTO job_attempts (job_id, attempt, worker, started_at, finished_at, outcome, error_code, error_message)
SELECT j.id, a, 'bench-worker-' || (1 + get_byte(uuid_send(j.id), 14) % 4),
       j.created_at + make_interval(mins => (a - 1) * 3) + interval '40 ms',
       CASE WHEN j.status = 'running' THEN NULL
            WHEN a < j.attempts THEN j.created_at + make_interval(mins => (a - 1) * 3) + interval '2 s'
            ELSE j.finished_at END,
       CASE WHEN j.status = 'running' THEN NULL WHEN a < j.attempts THEN 'retrying' ELSE j.status END,
       CASE WHEN a < j.attempts THEN coalesce(j.error_code, 'http_status') WHEN j.status IN ('failed', 'dead') THEN j.error_code END,
       CASE WHEN a < j.attempts THEN coalesce(j.error_message, 'the endpoint answered 502 Bad Gateway')
            WHEN j.status IN ('failed', 'dead') THEN j.error_message END
  FROM jobs j, generate_series(1, j.attempts) a
 WHERE j.status = 'dead'
    OR (j.status IN ('succeeded', 'failed', 'running') AND get_byte(uuid_send(j.id), 15) % 10 = 0)
 ORDER BY j.id, a;

-- The bench tenant's webhook endpoints, messages and attempts (a message a
-- little under every ten minutes, 4,320 over 30 days, each delivered to one
-- endpoint; one in ten needed a second attempt).
INSERT INTO webhook_endpoints (id, tenant_id, url, description, event_types, secret, created_at, updated_at)
SELECT pg_temp.uuid7(:now_ms - 2700000000 + e * 1000, 0, e), :'t1_id', 'https://clinic-1.example.ir/peyk/events/' || e,
       'endpoint ' || e, CASE WHEN e = 1 THEN '{}'::text[] ELSE ARRAY['job.succeeded', 'job.failed'] END,
       'whsec_' || encode(sha256(('bench-' || e)::bytea), 'base64'),
       to_timestamp((:now_ms - 2700000000 + e * 1000) / 1000.0), to_timestamp((:now_ms - 2700000000 + e * 1000) / 1000.0)
  FROM generate_series(1, 5) e;

INSERT INTO webhook_messages (id, tenant_id, event_type, payload, created_at, dispatched_at)
SELECT 'msg_' || replace(pg_temp.uuid7(ms, 0, m)::text, '-', ''), :'t1_id', event_type,
       jsonb_build_object('type', event_type, 'timestamp', to_char(to_timestamp(ms / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                          'data', jsonb_build_object('job_id', pg_temp.uuid7(ms, 2, m), 'type', 'webhook',
                                                     'status', CASE event_type WHEN 'job.failed' THEN 'dead' ELSE 'succeeded' END)),
       to_timestamp(ms / 1000.0), to_timestamp(ms / 1000.0)
  FROM (SELECT m, :now_ms - 2592000000 + m::bigint * 600000 - 1000 AS ms,
               CASE WHEN m % 10 = 0 THEN 'job.failed' ELSE 'job.succeeded' END AS event_type
          FROM generate_series(1, 4320) m) s;

INSERT INTO webhook_attempts (message_id, endpoint_id, job_id, attempt, status_code, latency_ms, response_excerpt, error_code, created_at)
SELECT w.id, e.id, md5(w.id)::uuid, a,
       CASE WHEN a = 1 AND w.n % 10 = 0 THEN 503 ELSE 200 END,
       35 + (w.n % 200),
       CASE WHEN a = 1 AND w.n % 10 = 0 THEN 'Service Unavailable' ELSE '{"ok":true}' END,
       CASE WHEN a = 1 AND w.n % 10 = 0 THEN 'http_status' END,
       w.created_at + make_interval(secs => (a - 1) * 30 + 0.1)
  FROM (SELECT id, created_at, row_number() OVER (ORDER BY id) AS n FROM webhook_messages WHERE tenant_id = :'t1_id') w
  JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM webhook_endpoints WHERE tenant_id = :'t1_id') e ON e.k = w.n % 5
  CROSS JOIN LATERAL generate_series(1, CASE WHEN w.n % 10 = 0 THEN 2 ELSE 1 END) a;

-- The bench tenant's payments (Zarinpal, one about every 15 minutes) and
-- the callback that came for each.
INSERT INTO payments (id, tenant_id, gateway, reference, order_id, amount, currency, status, gateway_code, ref_id, card_mask,
                      fee, paid_amount, reason, checked_at, finished_at, announced_at, created_at, updated_at, callbacks_stored)
SELECT pg_temp.uuid7(ms, 3, p), :'t1_id', 'zarinpal', 'A' || lpad((900000000 + p)::text, 35, '0'), 'order-p' || p,
       amount, 'IRR', status,
       CASE status WHEN 'verified' THEN '100' WHEN 'failed' THEN '-51' END,
       CASE WHEN status = 'verified' THEN (5000000 + p)::text END,
       CASE WHEN status = 'verified' THEN '6037-99**-****-' || lpad((p % 10000)::text, 4, '0') END,
       CASE WHEN status = 'verified' THEN amount / 100 END,
       CASE WHEN status = 'verified' THEN amount END,
       CASE WHEN status = 'failed' THEN 'the payer cancelled at the gateway' END,
       CASE WHEN status <> 'pending' THEN to_timestamp(ms / 1000.0) + interval '90 s' END,
       CASE WHEN status <> 'pending' THEN to_timestamp(ms / 1000.0) + interval '90 s' END,
       CASE WHEN status <> 'pending' THEN to_timestamp(ms / 1000.0) + interval '91 s' END,
       to_timestamp(ms / 1000.0), to_timestamp(ms / 1000.0) + CASE WHEN status <> 'pending' THEN interval '91 s' ELSE interval '0' END,
       CASE WHEN status = 'pending' THEN 0 ELSE 1 END
  FROM (SELECT p, :now_ms - 2592000000 + p::bigint * 900000 - 1000 AS ms, 1500000 + (p % 50) * 50000 AS amount,
               CASE WHEN p % 20 = 0 THEN 'failed' WHEN p > 2870 THEN 'pending' ELSE 'verified' END AS status
          FROM generate_series(1, 2880) p) s;

INSERT INTO inbound_events (id, tenant_id, source, dedupe_key, event_type, method, query, content_type, body, payment_id, received_at)
SELECT pg_temp.uuid7((extract(epoch FROM created_at) * 1000)::bigint + 80000, 4, row_number() OVER (ORDER BY id)), tenant_id, 'zarinpal',
       reference || ':' || CASE status WHEN 'failed' THEN 'NOK' ELSE 'OK' END,
       CASE status WHEN 'failed' THEN 'NOK' ELSE 'OK' END, 'GET',
       'Authority=' || reference || '&Status=' || CASE status WHEN 'failed' THEN 'NOK' ELSE 'OK' END, NULL, '', id,
       created_at + interval '80 s'
  FROM payments
 WHERE tenant_id = :'t1_id' AND status <> 'pending';

COMMIT;
