//! The `payment_reconcile` job: finds payments whose callback never came
//! (the payer closed the tab, the network dropped it) and queues their
//! verification, so that a lost callback does not lose a paid order.
//!
//! Workers queue one per (tenant, gateway) with payments pending for longer
//! than `PEYK_PAYMENT_RECONCILE_AFTER_SECONDS`, once per
//! `PEYK_PAYMENT_RECONCILE_SECONDS` across the fleet. What it verifies:
//! - Zarinpal: the authorities its `unVerified` list says were paid.
//! - IDPay: payments its inquiry reports paid (10, 100, 101, 200).
//! - Stripe: every pending PaymentIntent (retrieval changes nothing).
//! - BitPay: payments with a candidate `trans_id` from a callback.
//! - All: payments older than `PEYK_PAYMENT_EXPIRE_SECONDS`, whose
//!   verification settles them as failed if still unpaid. BitPay can be
//!   verified only with a callback's `trans_id`, so a BitPay payment without
//!   one stays pending.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use peyk_schema::queries::payments as q;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::{idpay_for, zarinpal_for, Gateway, PaymentVerificationJob};
use crate::{Job, JobContext, JobError, JobKind, ValidationErrors};

/// Payments looked at per run; the next run takes the next ones.
const BATCH: i64 = 100;

/// Whether IDPay's inquiry says the payment was paid (10: paid, not yet
/// verified; 100, 101, 200: verified) — only then is it worth a
/// verification job (an unpaid one's would only find "not yet").
async fn idpay_paid(
    payments: &super::PaymentsClient,
    account: &peyk_schema::PaymentAccountRow,
    payment: &peyk_schema::PaymentRow,
) -> Result<bool, JobError> {
    let Some(job) = PaymentVerificationJob::for_payment(payment, None) else { return Ok(false) };
    let status = idpay_for(payments, account)?.inquiry(&job.expected(None)).await?;
    Ok(matches!(status, Some(10 | 100 | 101 | 200)))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentReconcileJob {
    pub gateway: Gateway,
}

impl Job for PaymentReconcileJob {
    type Clients = crate::SharedClients;
    const TYPE: &'static str = "payment_reconcile";
    const INTERNAL: bool = true;
    const DEFAULT_MAX_ATTEMPTS: i32 = 3;
    const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);

    fn validate(&self) -> Result<(), ValidationErrors> {
        Ok(())
    }

    async fn run(self, ctx: &JobContext) -> Result<Value, JobError> {
        let pool = &ctx.clients.backbone.pool;
        let payments = &ctx.clients.payments;
        let db = |e: peyk_schema::DbError| JobError::retry("database", e.to_string());
        let Some(account) = q::account(pool, ctx.tenant_id, self.gateway.name()).await.map_err(db)? else {
            return Ok(json!({ "looked_at": 0, "queued": 0, "note": "the gateway account was removed" }));
        };
        let now = Utc::now();
        let checked_before = now - chrono::Duration::from_std(payments.reconcile_after).unwrap_or_default();
        let expired_before = now - chrono::Duration::from_std(payments.expire_after).unwrap_or_default();
        let pending = q::pending(pool, ctx.tenant_id, self.gateway.name(), checked_before, BATCH).await.map_err(db)?;
        if pending.is_empty() {
            return Ok(json!({ "looked_at": 0, "queued": 0 }));
        }

        let paid_unverified: HashSet<String> = match self.gateway {
            Gateway::Zarinpal => zarinpal_for(payments, &account)?.unverified().await?.into_iter().collect(),
            _ => HashSet::new(),
        };
        // Each payment on its own: one that errors is reported and looked
        // at again next round, and does not stop the others. Inquiries stop
        // early enough that the slowest possible one still ends inside the
        // attempt's timeout; the rest wait for the next run.
        let started = std::time::Instant::now();
        let budget = Self::ATTEMPT_TIMEOUT.mul_f64(0.8);
        let mut to_verify = Vec::new();
        let mut looked_at = Vec::new();
        let mut errors = Vec::new();
        for payment in &pending {
            if self.gateway == Gateway::Idpay && started.elapsed() + payments.timeout > budget {
                break;
            }
            looked_at.push(payment.id);
            let expired = payment.created_at < expired_before;
            let can_verify = self.gateway != Gateway::Bitpay || !payment.trans_id_candidates.is_empty();
            let worth_verifying = match self.gateway {
                Gateway::Zarinpal => paid_unverified.contains(&payment.reference),
                Gateway::Idpay => match idpay_paid(payments, &account, payment).await {
                    Ok(paid) => paid,
                    Err(e) => {
                        tracing::warn!(payment_id = %payment.id, code = %e.code, "IDPay inquiry failed; looked at again next round");
                        errors.push(json!({ "payment_id": payment.id, "code": e.code, "message": e.message }));
                        false
                    }
                },
                Gateway::Bitpay => can_verify,
                Gateway::Stripe => true,
            };
            if worth_verifying || (expired && can_verify) {
                to_verify.push(payment);
            }
        }

        let mut queued = Vec::new();
        for payment in &to_verify {
            let Some(job) = PaymentVerificationJob::for_payment(payment, None) else { continue };
            let payload = serde_json::to_value(&job).map_err(|e| JobError::permanent("invalid_payload", e.to_string()))?;
            queued.push(ctx.enqueue_follow_up(&JobKind::described::<PaymentVerificationJob>(), payload, Utc::now()).await?);
        }
        // Looked at: the next run waits `reconcile_after` before asking again.
        q::touch_checked(pool, &looked_at).await.map_err(db)?;
        Ok(json!({ "looked_at": looked_at.len(), "queued": queued.len(), "verification_jobs": queued, "errors": errors }))
    }
}
