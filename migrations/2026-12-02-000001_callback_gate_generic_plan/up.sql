-- PostgreSQL plans a PL/pgSQL query with its parameters' values (a custom
-- plan) until it judges a generic plan no dearer; for the callback gate it
-- kept planning every call (the INSERTs' column defaults parsed again each
-- time). Its plan does not depend on the values: the payment is found by
-- its key, the unknown-payment sample by its index. Generic plan forced:
-- 4 clients, 4 callbacks a transaction, fsync on: 364 → 412 and 399 → 437
-- transactions a second (pgbench, two pairs of runs).
ALTER FUNCTION peyk_record_callback SET plan_cache_mode = force_generic_plan;
