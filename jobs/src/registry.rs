//! Peyk's job types, as the registry the API and the worker read (see
//! `peyk_queue::registry` for what a registry is).

use std::sync::{Arc, LazyLock};

use crate::context::SharedClients;

/// A registry of Peyk's job types, which all run with [`SharedClients`].
pub type Registry = peyk_queue::Registry<SharedClients>;
/// One of Peyk's job types.
pub type JobKind = peyk_queue::JobKind<SharedClients>;

/// Peyk's job types, each added to `$registry` by `$add` (`register`: with
/// its run code; `describe`: without). Adding a type is one line here; the
/// API, the worker and the OpenAPI document all read this list.
macro_rules! peyk_types {
    ($registry:expr, $add:ident) => {
        $registry
            .$add::<crate::webhook::WebhookJob>()
            .$add::<crate::transcription::TranscriptionJob>()
            .$add::<crate::sms::SmsJob>()
            .$add::<crate::sms::status::SmsStatusJob>()
            .$add::<crate::email::EmailJob>()
            .$add::<crate::medical::MedicalAnalysisJob>()
            .$add::<crate::payments::PaymentVerificationJob>()
            .$add::<crate::payments::reconcile::PaymentReconcileJob>()
            .$add::<crate::events::delivery::WebhookDeliveryJob>()
            .$add::<crate::events::callback::JobCallbackJob>()
            .$add::<crate::task::TaskJob>()
    };
}

/// Peyk's job types with their run code: the worker's registry.
pub fn production() -> Arc<Registry> {
    static PRODUCTION: LazyLock<Arc<Registry>> = LazyLock::new(|| Arc::new(peyk_types!(Registry::new(), register)));
    PRODUCTION.clone()
}

/// Peyk's job types without their run code: the API's registry (it
/// validates, shows and documents jobs, and never runs one), so that the
/// SMTP transport, the LLM client and the other providers' code that only
/// `run` reaches are not linked into `peyk-api`.
pub fn catalogue() -> Arc<Registry> {
    static CATALOGUE: LazyLock<Arc<Registry>> = LazyLock::new(|| Arc::new(peyk_types!(Registry::new(), describe)));
    CATALOGUE.clone()
}

#[cfg(test)]
mod tests {
    use peyk_queue::pipeline::{validate_steps, StepSpec};
    use serde_json::{json, Value};

    use super::*;

    #[test]
    fn deliveries_are_internal_with_their_own_schedule() {
        let registry = production();
        let delivery = registry.get("webhook_delivery").unwrap();
        assert!(delivery.internal && !registry.get("webhook").unwrap().internal);
        assert!(!registry.submittable_names().contains(&"webhook_delivery") && registry.submittable_names().contains(&"webhook"));
        assert!(delivery.retry_delay(1, None).is_some());
        assert_eq!(registry.get("webhook").unwrap().retry_delay(1, None), None, "other types keep the runner's backoff");
    }

    #[test]
    fn the_catalogue_lists_the_production_types() {
        let (production, catalogue) = (production(), catalogue());
        assert_eq!(production.names(), catalogue.names());
        assert_eq!(production.submittable_names(), catalogue.submittable_names());
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn a_name_is_registered_once() {
        let _ = Registry::new().register::<crate::webhook::WebhookJob>().register::<crate::webhook::WebhookJob>();
    }

    fn steps(value: Value) -> Vec<StepSpec> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn pipeline_submissions_check_their_references() {
        let registry = production();
        let webhook = |body: Value| json!({ "type": "webhook", "payload": { "url": "https://example.com/h", "body": body } });
        let ok = steps(json!([
            webhook(json!({})),
            webhook(json!({ "code": { "from": "steps.0.result.status_code" }, "id": { "from": "steps.0.job_id" } }))
        ]));
        assert!(validate_steps(&registry, &ok).is_ok());

        let missing = steps(json!([webhook(json!({})), webhook(json!({ "code": { "from": "steps.0.result.statuscode" } }))]));
        let err = validate_steps(&registry, &missing).unwrap_err();
        assert_eq!(err.0[0].field, "steps[1].payload.body.code");
        assert!(err.0[0].problem.contains("no field `statuscode`"), "{err}");

        let forward = steps(json!([webhook(json!({ "x": { "from": "steps.1.result" } })), webhook(json!({}))]));
        assert!(validate_steps(&registry, &forward).unwrap_err().0[0].problem.contains("does not run before"));

        let invalid = steps(json!([{ "type": "webhook", "payload": { "url": "ftp://x", "body": {} } }]));
        assert_eq!(validate_steps(&registry, &invalid).unwrap_err().0[0].field, "steps[0].payload.url");
        let unknown = steps(json!([{ "type": "fax", "payload": {} }]));
        assert_eq!(validate_steps(&registry, &unknown).unwrap_err().0[0].field, "steps[0].type");
        assert!(validate_steps(&registry, &[]).is_err());
    }
}
