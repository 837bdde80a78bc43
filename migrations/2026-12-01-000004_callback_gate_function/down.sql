DROP FUNCTION peyk_record_callback;
