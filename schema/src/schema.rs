//! Diesel's view of the tables created by `migrations/`. Kept by hand: the
//! migrations are the source of truth and `diesel print-schema` is not needed
//! to build.

diesel::table! {
    tenants (id) {
        id -> Uuid,
        name -> Text,
        created_at -> Timestamptz,
        weight -> Int4,
        requests_per_second -> Nullable<Int4>,
        burst -> Nullable<Int4>,
        jobs_per_day -> Nullable<Int8>,
        sms_per_day -> Nullable<Int8>,
        audio_minutes_per_month -> Nullable<Int8>,
        llm_tokens_per_month -> Nullable<Int8>,
        sensitive_retention_days -> Nullable<Float8>,
        content_retention_days -> Nullable<Float8>,
        upload_retention_days -> Nullable<Float8>,
        trail_retention_days -> Nullable<Float8>,
        sender_domains -> Array<Text>,
        emails_per_day -> Nullable<Int8>,
    }
}

diesel::table! {
    tenant_queue_caps (tenant_id, queue) {
        tenant_id -> Uuid,
        queue -> Text,
        max_running -> Int4,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        key_hash -> Bytea,
        key_prefix -> Text,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        name -> Text,
        scopes -> Array<Text>,
        expires_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    console_sessions (token_hash) {
        token_hash -> Bytea,
        key_hash -> Bytea,
        csrf_token -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Uuid,
        at -> Timestamptz,
        tenant_id -> Nullable<Uuid>,
        actor_key_id -> Nullable<Uuid>,
        actor -> Text,
        action -> Text,
        target -> Nullable<Text>,
        details -> Jsonb,
    }
}

diesel::table! {
    jobs (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        job_type -> Text,
        status -> Text,
        payload -> Jsonb,
        result -> Nullable<Jsonb>,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
        progress -> Nullable<Int2>,
        attempts -> Int4,
        max_attempts -> Int4,
        priority -> Int2,
        idempotency_key -> Nullable<Text>,
        request_hash -> Nullable<Bytea>,
        run_at -> Timestamptz,
        queue_task_id -> Nullable<Text>,
        locked_by -> Nullable<Text>,
        lease_until -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
        pipeline_id -> Nullable<Uuid>,
        pipeline_step -> Nullable<Int4>,
        schedule_id -> Nullable<Uuid>,
        metadata -> Jsonb,
        callback -> Nullable<Jsonb>,
        erased_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    pipelines (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        status -> Text,
        steps -> Jsonb,
        current_step -> Int4,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        metadata -> Jsonb,
        erased_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    job_attempts (id) {
        id -> Int8,
        job_id -> Uuid,
        attempt -> Int4,
        worker -> Text,
        started_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        outcome -> Nullable<Text>,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
    }
}

diesel::table! {
    files (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        filename -> Text,
        content_type -> Nullable<Text>,
        size_bytes -> Int8,
        sha256 -> Bytea,
        duration_seconds -> Nullable<Float8>,
        created_at -> Timestamptz,
        erased_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    email_templates (tenant_id, name, language) {
        tenant_id -> Uuid,
        name -> Text,
        language -> Text,
        subject -> Text,
        html -> Nullable<Text>,
        text -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    task_targets (tenant_id, name) {
        tenant_id -> Uuid,
        name -> Text,
        url -> Text,
        secret -> Text,
        timeout_seconds -> Int4,
        max_attempts -> Int4,
        min_backoff_seconds -> Int4,
        max_backoff_seconds -> Int4,
        description -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    payment_accounts (tenant_id, gateway) {
        tenant_id -> Uuid,
        gateway -> Text,
        credentials -> Jsonb,
        sandbox -> Bool,
        return_url -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    payments (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        gateway -> Text,
        reference -> Text,
        order_id -> Text,
        amount -> Int8,
        currency -> Text,
        status -> Text,
        trans_id -> Nullable<Text>,
        gateway_code -> Nullable<Text>,
        ref_id -> Nullable<Text>,
        card_mask -> Nullable<Text>,
        fee -> Nullable<Int8>,
        paid_amount -> Nullable<Int8>,
        reason -> Nullable<Text>,
        checked_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        announced_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        trans_id_candidates -> Array<Text>,
        verification_job_id -> Nullable<Uuid>,
        verifications_window_start -> Nullable<Timestamptz>,
        verifications_in_window -> Int4,
        reversed_from -> Nullable<Text>,
        recheck_requested -> Bool,
        callbacks_stored -> Int4,
        verification_queued_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    inbound_sources (tenant_id, name) {
        tenant_id -> Uuid,
        name -> Text,
        secret -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    inbound_events (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        source -> Text,
        dedupe_key -> Text,
        event_type -> Nullable<Text>,
        method -> Text,
        query -> Nullable<Text>,
        content_type -> Nullable<Text>,
        body -> Text,
        payment_id -> Nullable<Uuid>,
        job_id -> Nullable<Uuid>,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    schedules (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        cron -> Nullable<Text>,
        every_seconds -> Nullable<Int4>,
        timezone -> Text,
        calendar -> Text,
        anchor_at -> Timestamptz,
        start_at -> Nullable<Timestamptz>,
        end_at -> Nullable<Timestamptz>,
        target -> Jsonb,
        overlap -> Text,
        misfire -> Text,
        misfire_cap -> Int4,
        misfire_grace_seconds -> Int4,
        paused -> Bool,
        next_fire_at -> Nullable<Timestamptz>,
        buffered_fire_at -> Nullable<Timestamptz>,
        last_fire_at -> Nullable<Timestamptz>,
        last_job_id -> Nullable<Uuid>,
        last_pipeline_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    schedule_fires (schedule_id, fire_at) {
        schedule_id -> Uuid,
        fire_at -> Timestamptz,
        fired_at -> Timestamptz,
        outcome -> Text,
        missed -> Nullable<Int4>,
        manual -> Bool,
        job_id -> Nullable<Uuid>,
        pipeline_id -> Nullable<Uuid>,
    }
}

diesel::joinable!(api_keys -> tenants (tenant_id));
diesel::table! {
    sms_outbox (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        job_id -> Uuid,
        mode -> Text,
        receptor -> Text,
        sender -> Nullable<Text>,
        message -> Nullable<Text>,
        template -> Nullable<Text>,
        tokens -> Nullable<Jsonb>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        url -> Text,
        description -> Nullable<Text>,
        event_types -> Array<Text>,
        enabled -> Bool,
        secret -> Text,
        previous_secret -> Nullable<Text>,
        previous_secret_expires_at -> Nullable<Timestamptz>,
        failing_since -> Nullable<Timestamptz>,
        disabled_reason -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_messages (id) {
        id -> Text,
        tenant_id -> Uuid,
        event_type -> Text,
        payload -> Jsonb,
        created_at -> Timestamptz,
        dispatched_at -> Nullable<Timestamptz>,
        callback_job_id -> Nullable<Uuid>,
        erased_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> Int8,
        message_id -> Text,
        endpoint_id -> Uuid,
        job_id -> Uuid,
        attempt -> Int4,
        status_code -> Nullable<Int4>,
        latency_ms -> Float8,
        response_excerpt -> Nullable<Text>,
        error_code -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(email_templates -> tenants (tenant_id));
diesel::joinable!(task_targets -> tenants (tenant_id));
diesel::joinable!(webhook_endpoints -> tenants (tenant_id));
diesel::joinable!(webhook_messages -> tenants (tenant_id));
diesel::joinable!(webhook_attempts -> webhook_messages (message_id));
diesel::joinable!(webhook_attempts -> webhook_endpoints (endpoint_id));
diesel::joinable!(files -> tenants (tenant_id));
diesel::joinable!(jobs -> tenants (tenant_id));
diesel::joinable!(jobs -> pipelines (pipeline_id));
diesel::joinable!(job_attempts -> jobs (job_id));
diesel::joinable!(schedule_fires -> schedules (schedule_id));
diesel::joinable!(schedules -> tenants (tenant_id));

// Reconcile asks for pending payments whose gateway account exists.
diesel::allow_tables_to_appear_in_same_query!(payments, payment_accounts);
diesel::allow_tables_to_appear_in_same_query!(api_keys, tenants);
diesel::allow_tables_to_appear_in_same_query!(audit_log, tenants);
diesel::allow_tables_to_appear_in_same_query!(schedule_fires, jobs);
