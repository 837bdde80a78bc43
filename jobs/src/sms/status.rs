//! The `sms_status` job: the follow-up an `sms` job queues after Kavenegar
//! accepted its messages. It asks Kavenegar how delivery went and writes the
//! answer onto the SMS job (`result.delivery`), then asks again, with
//! backoff, until every message is in a final state (delivered,
//! undelivered, failed, blocked, cancelled) or its attempts run out.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::kavenegar;
use crate::{Job, JobContext, JobError, ValidationErrors};

/// Checks made before giving up on a final state (with the retry backoff,
/// about half an hour after the first).
const CHECKS: i32 = 10;

/// Payload of an `sms_status` job (queued by `sms` jobs; not for clients).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsStatusJob {
    /// The `sms` job whose messages are checked.
    pub sms_job_id: Uuid,
    /// Kavenegar message ids.
    pub message_ids: Vec<i64>,
}

impl Job for SmsStatusJob {
    type Clients = crate::SharedClients;
    const TYPE: &'static str = "sms_status";
    /// Queued by `sms` jobs only.
    const INTERNAL: bool = true;
    const DEFAULT_MAX_ATTEMPTS: i32 = CHECKS;
    const RESULT_FIELDS: &'static [&'static str] = &["state", "checked_at", "checks", "messages"];
    const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

    fn validate(&self) -> Result<(), ValidationErrors> {
        if self.message_ids.is_empty() || self.message_ids.len() > 500 {
            return Err(ValidationErrors::single("message_ids", "must list 1 to 500 message ids"));
        }
        Ok(())
    }

    async fn run(self, ctx: &JobContext) -> Result<serde_json::Value, JobError> {
        let Some(client) = &ctx.clients.sms.kavenegar else {
            return Err(JobError::permanent("no_provider", "PEYK_KAVENEGAR_API_KEY is not set"));
        };
        let ids: Vec<String> = self.message_ids.iter().map(i64::to_string).collect();
        let entries = client.call("sms/status", &[("messageid", ids.join(","))]).await.map_err(|e| match e {
            kavenegar::KavenegarError::Api { status, .. } if kavenegar::status_meaning(status).2 == kavenegar::Handling::Permanent => {
                JobError::permanent(kavenegar::status_meaning(status).0, e.to_string())
            }
            _ => JobError::retry("status_check_failed", e.to_string()),
        })?;
        let messages: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                let (state, _) = kavenegar::delivery_status(e.status);
                json!({ "messageid": e.messageid, "status": e.status, "statustext": e.statustext, "state": state })
            })
            .collect();
        let complete = entries.len() >= self.message_ids.len() && entries.iter().all(|e| kavenegar::delivery_status(e.status).1);
        let last_check = ctx.attempt >= CHECKS;
        let state = if complete {
            "final"
        } else if last_check {
            "gave_up"
        } else {
            "pending"
        };
        let delivery = json!({ "state": state, "checked_at": chrono::Utc::now(), "checks": ctx.attempt, "messages": messages });
        let found = peyk_schema::queries::sms::set_delivery(
            &ctx.clients.backbone.pool,
            peyk_schema::models::TenantId(ctx.tenant_id),
            self.sms_job_id,
            &delivery,
        )
        .await
        .map_err(|e| JobError::retry("database_unavailable", e.to_string()))?;
        if !found {
            return Err(JobError::permanent("job_not_found", "the sms job does not exist"));
        }
        if !complete && !last_check {
            return Err(JobError::retry("delivery_pending", "some messages are not in a final state yet")
                .retry_after(Some(ctx.clients.sms.status_delay)));
        }
        Ok(delivery)
    }
}
