//! Payments end to end against local servers speaking each gateway's wire
//! format (tests/src/gateways.rs): callbacks as the gateways send them,
//! verification recorded once (replays, races), every outcome class,
//! transient failures retried, a lost callback recovered by reconcile,
//! Stripe and Standard Webhooks signatures.

use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use hmac::{Hmac, Mac};
use peyk_tests::gateways::{self, BitPay, Failure, IdPay, Stripe, Zarinpal};
use peyk_tests::sink::Sink;
use peyk_tests::{Api, TestEnv, Worker};
use serde_json::{json, Value};
use sha2::Sha256;

const WAIT: Duration = Duration::from_secs(20);

/// A tenant with an API key, the API, and its tenant id.
struct Shop {
    api: Api,
    key: String,
    tenant: String,
}

impl Shop {
    async fn open(env: &TestEnv, name: &str) -> Self {
        let key = env.create_key(name).await;
        let api = env.start_api().await;
        Shop { api, key, tenant: String::new() }
    }

    /// Creates the gateway account; learns the tenant id from its callback path.
    async fn account(&mut self, gateway: &str, body: Value) -> Value {
        let (status, account) =
            self.api.request(reqwest::Method::PUT, &format!("/v1/payment-accounts/{gateway}"), Some(&self.key), Some(&body)).await;
        assert_eq!(status, 200, "{account}");
        self.tenant = account["callback_path"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
        account
    }

    async fn register(&self, payment: Value) -> String {
        let (status, body) = self.api.post("/v1/payments", &self.key, &payment).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["status"], "pending");
        body["payment_id"].as_str().unwrap().to_string()
    }

    async fn payment(&self, id: &str) -> Value {
        let (status, body) = self.api.get(&format!("/v1/payments/{id}"), &self.key).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn wait_payment(&self, id: &str, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let payment = self.payment(id).await;
            if payment["status"] == status {
                return payment;
            }
            assert!(tokio::time::Instant::now() < deadline, "payment {id} not {status}: {payment:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A callback as the gateway sends it: no API key.
    async fn callback(
        &self,
        gateway: &str,
        request: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
        method: reqwest::Method,
    ) -> (u16, Value) {
        let url = format!("{}/v1/callbacks/{gateway}/{}", self.api.url, self.tenant);
        let response = request(self.api.http.request(method, url)).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn zarinpal_callback(&self, authority: &str, status: &str) -> (u16, Value) {
        self.callback_query("zarinpal", &format!("Authority={authority}&Status={status}")).await
    }

    /// A GET callback (the payer's browser redirected by the gateway).
    async fn callback_query(&self, gateway: &str, query: &str) -> (u16, Value) {
        let path = format!("/v1/callbacks/{gateway}/{}?{query}", self.tenant);
        self.api.request(reqwest::Method::GET, &path, None, None).await
    }

    async fn verification(&self, job_payload: Value) -> Value {
        let id = self.api.submit(&self.key, &json!({ "type": "payment_verification", "payload": job_payload })).await;
        self.api.wait_for_status(&self.key, &id, "succeeded", WAIT).await
    }
}

async fn worker(env: &TestEnv, servers: &[Vec<(&'static str, String)>], extra: &[(&str, &str)]) -> Worker {
    let mut all: Vec<(&str, &str)> = servers.iter().flat_map(|server| peyk_tests::env_pairs(server)).collect();
    all.extend_from_slice(extra);
    env.start_worker_with(&all).await
}

fn zarinpal_account() -> Value {
    json!({ "credentials": { "merchant_id": gateways::ZARINPAL_MERCHANT }, "sandbox": true })
}

fn zarinpal_payment(authority: &str, amount: i64, order: &str) -> Value {
    json!({ "gateway": "zarinpal", "reference": authority, "amount": amount, "currency": "IRR", "order_id": order })
}

#[tokio::test]
async fn a_zarinpal_callback_is_verified_once_and_replays_change_nothing() {
    let env = TestEnv::new("pay-zarinpal").await;
    let mut shop = Shop::open(&env, "clinic").await;
    let zarinpal = Zarinpal::start().await;
    let _worker = worker(&env, &[zarinpal.env()], &[]).await;
    shop.account("zarinpal", zarinpal_account()).await;

    let authority = zarinpal.create_payment(1_500_000);
    let id = shop.register(zarinpal_payment(&authority, 1_500_000, "order-1")).await;
    zarinpal.pay(&authority);
    let (status, answer) = shop.zarinpal_callback(&authority, "OK").await;
    assert_eq!((status, answer["status"].as_str(), answer["duplicate"].as_bool()), (200, Some("verifying"), Some(false)), "{answer}");
    let payment = shop.wait_payment(&id, "verified").await;
    assert_eq!(payment["paid"], true);
    assert_eq!(payment["card_mask"], "502229******5995");
    assert!(payment["ref_id"].as_str().unwrap().parse::<u64>().unwrap() > 0, "{payment}");
    assert_eq!(payment["gateway_code"], "100");

    // The same callback again (the payer reloads the page): recorded once, no new verification.
    let (status, again) = shop.zarinpal_callback(&authority, "OK").await;
    assert_eq!((status, again["duplicate"].as_bool(), again["status"].as_str()), (200, Some(true), Some("verified")), "{again}");
    assert!(again["verification_job_id"].is_null());
    // Asking again through the API returns the stored outcome without asking Zarinpal.
    let (status, queued) = shop.api.post(&format!("/v1/payments/{id}/verify"), &shop.key, &json!({})).await;
    assert_eq!(status, 202, "{queued}");
    let job = shop.api.wait_for_status(&shop.key, queued["job_id"].as_str().unwrap(), "succeeded", WAIT).await;
    assert_eq!((job["result"]["duplicate"].as_bool(), job["result"]["status"].as_str()), (Some(true), Some("verified")));
    assert_eq!(zarinpal.verifications(&authority), 1);
    assert_eq!(zarinpal.calls("verify"), 1);

    // A cancelled payment's callback is recorded, and verifies nothing.
    let cancelled = zarinpal.create_payment(20_000);
    let cancelled_id = shop.register(zarinpal_payment(&cancelled, 20_000, "order-2")).await;
    let (_, answer) = shop.zarinpal_callback(&cancelled, "NOK").await;
    assert_eq!(answer["status"], "received", "{answer}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(shop.payment(&cancelled_id).await["status"], "pending");

    let (_, events) = shop.api.get("/v1/inbound-events?source=zarinpal", &shop.key).await;
    let events = events["data"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1]["query"], format!("Authority={authority}&Status=OK"));
    assert_eq!(events[1]["payment_id"], id.as_str());
}

#[tokio::test]
async fn zarinpal_outcomes_are_classified() {
    let env = TestEnv::new("pay-zarinpal-outcomes").await;
    let mut shop = Shop::open(&env, "writer").await;
    let zarinpal = Zarinpal::start().await;
    let _worker = worker(&env, &[zarinpal.env()], &[]).await;
    shop.account("zarinpal", zarinpal_account()).await;

    // Paid 50,000 but the order expects 60,000: Zarinpal answers -50, never credited.
    let authority = zarinpal.create_payment(50_000);
    zarinpal.pay(&authority);
    let job = shop.verification(zarinpal_payment(&authority, 60_000, "o-mismatch")).await;
    assert_eq!((job["result"]["status"].as_str(), job["result"]["paid"].as_bool()), (Some("amount_mismatch"), Some(false)), "{job}");

    // Not paid (yet): -51. Settles nothing — the payer may still be at the
    // bank; only expiry (reconcile) fails it.
    let unpaid = zarinpal.create_payment(10_000);
    let job = shop.verification(zarinpal_payment(&unpaid, 10_000, "o-unpaid")).await;
    assert_eq!((job["result"]["status"].as_str(), job["result"]["paid"].as_bool()), (Some("pending"), Some(false)), "{job}");
    assert_eq!(job["result"]["gateway_code"], "-51");
    assert!(job["result"]["reason"].as_str().unwrap().contains("-51"), "{job}");

    // Verified before Peyk asked (101): paid.
    let earlier = zarinpal.create_payment(30_000);
    zarinpal.pay(&earlier);
    let body = json!({ "merchant_id": gateways::ZARINPAL_MERCHANT, "amount": 30_000, "authority": earlier });
    let first: Value = reqwest::Client::new()
        .post(format!("{}/pg/v4/payment/verify.json", zarinpal.url))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["data"]["code"], 100);
    let job = shop.verification(zarinpal_payment(&earlier, 30_000, "o-earlier")).await;
    assert_eq!((job["result"]["status"].as_str(), job["result"]["paid"].as_bool()), (Some("already_verified"), Some(true)), "{job}");

    // A 502 page, a dropped connection and "too many attempts" (-12 inside
    // an HTTP 200) are retried; the fourth attempt verifies.
    let flaky = zarinpal.create_payment(40_000);
    zarinpal.pay(&flaky);
    zarinpal.fail_next("verify", Failure::Status { http: 502, body: "<html>Bad Gateway</html>".into() });
    zarinpal.fail_next("verify", Failure::Close);
    zarinpal.fail_next(
        "verify",
        Failure::Status { http: 200, body: r#"{"data":[],"errors":{"code":-12,"message":"Too many attempts","validations":[]}}"#.into() },
    );
    let job = shop.verification(zarinpal_payment(&flaky, 40_000, "o-flaky")).await;
    assert_eq!((job["result"]["status"].as_str(), job["attempts"].as_i64()), (Some("verified"), Some(4)), "{job}");
    assert_eq!(zarinpal.verifications(&flaky), 1);

    // A wrong merchant id can never succeed: the job fails at once, and the
    // payment stays pending (it may well be paid).
    shop.account("zarinpal", json!({ "credentials": { "merchant_id": "00000000-0000-0000-0000-000000000000" }, "sandbox": true })).await;
    let other = zarinpal.create_payment(70_000);
    zarinpal.pay(&other);
    let id = shop
        .api
        .submit(&shop.key, &json!({ "type": "payment_verification", "payload": zarinpal_payment(&other, 70_000, "o-merchant") }))
        .await;
    let job = shop.api.wait_for_status(&shop.key, &id, "failed", WAIT).await;
    assert_eq!((job["error"]["code"].as_str(), job["attempts"].as_i64()), (Some("gateway_account_refused"), Some(1)), "{job}");
    let (_, list) = shop.api.get("/v1/payments?order_id=o-merchant", &shop.key).await;
    assert_eq!(list["data"][0]["status"], "pending", "{list}");
}

#[tokio::test]
async fn two_racing_verifications_record_one_outcome() {
    let env = TestEnv::new("pay-race").await;
    let mut shop = Shop::open(&env, "race").await;
    let zarinpal = Zarinpal::start().await;
    let _worker = worker(&env, &[zarinpal.env()], &[]).await;
    shop.account("zarinpal", zarinpal_account()).await;
    let sink = Sink::start().await;
    let (status, endpoint) = shop
        .api
        .post("/v1/webhook-endpoints", &shop.key, &json!({ "url": sink.url, "event_types": ["payment.succeeded", "payment.failed"] }))
        .await;
    assert_eq!(status, 201, "{endpoint}");
    let authority = zarinpal.create_payment(90_000);
    zarinpal.pay(&authority);

    // The first verification's answer (100) is held at the gateway while the
    // second one gets 101 and records its outcome first.
    let held = zarinpal.hold_next("verify");
    let payload = json!({ "type": "payment_verification", "payload": zarinpal_payment(&authority, 90_000, "o-race") });
    let first = shop.api.submit(&shop.key, &payload).await;
    while zarinpal.calls("verify") < 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = shop.api.submit(&shop.key, &payload).await;
    let second = shop.api.wait_for_status(&shop.key, &second, "succeeded", WAIT).await;
    held.notify_one();
    let first = shop.api.wait_for_status(&shop.key, &first, "succeeded", WAIT).await;

    assert_eq!(zarinpal.verifications(&authority), 2, "both asked the gateway");
    let duplicates: Vec<bool> = [&first, &second].iter().map(|job| job["result"]["duplicate"].as_bool().unwrap()).collect();
    assert_eq!(duplicates, [true, false], "only the second recorded: {first} {second}");
    let payment_ids: Vec<&Value> = [&first, &second].iter().map(|job| &job["result"]["payment_id"]).collect();
    assert_eq!(payment_ids[0], payment_ids[1]);
    assert_eq!(env.sql_count("SELECT count(*) AS n FROM payments").await, 1);
    assert_eq!(second["result"]["status"], "already_verified");
    assert_eq!(first["result"]["status"], "already_verified", "the stored outcome stands");

    // Announced once: one payment.succeeded, whichever verification won.
    let deliveries = sink.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.count(), 1, "{deliveries:?}");
    let event: Value = serde_json::from_slice(&deliveries[0].body).unwrap();
    assert_eq!(
        (event["type"].as_str(), event["data"]["order_id"].as_str(), event["data"]["paid"].as_bool()),
        (Some("payment.succeeded"), Some("o-race"), Some(true)),
        "{event}"
    );
}

#[tokio::test]
async fn idpay_callbacks_with_numbers_as_strings_and_toman() {
    let env = TestEnv::new("pay-idpay").await;
    let mut shop = Shop::open(&env, "idpay").await;
    let idpay = IdPay::start().await;
    idpay.numbers_as_strings(true);
    let _worker = worker(&env, &[idpay.env()], &[]).await;
    shop.account(
        "idpay",
        json!({ "credentials": { "api_key": gateways::IDPAY_API_KEY }, "sandbox": true, "return_url": "https://shop.example/paid" }),
    )
    .await;

    // The order is 25,000 Toman; IDPay counts 250,000 Rial.
    let id = idpay.create_payment("order-7", 250_000);
    let payment_id =
        shop.register(json!({ "gateway": "idpay", "reference": id, "amount": 25_000, "currency": "IRT", "order_id": "order-7" })).await;
    idpay.set_status(&id, 10);
    // IDPay posts a form through the payer's browser; Peyk sends the browser on.
    let form = format!("status=10&track_id=10012&id={id}&order_id=order-7&amount=250000&card_no=603799******7999");
    let url = format!("{}/v1/callbacks/idpay/{}", shop.api.url, shop.tenant);
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = no_redirects.post(url).header("content-type", "application/x-www-form-urlencoded").body(form).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("https://shop.example/paid?payment_id=") && location.contains("order_id=order-7&status=verifying"),
        "{location}"
    );

    let payment = shop.wait_payment(&payment_id, "verified").await;
    assert_eq!((payment["paid_amount"].as_i64(), payment["card_mask"].as_str()), (Some(250_000), Some("603799******7999")), "{payment}");
    assert!(idpay.sandbox_flags().iter().all(|sandbox| *sandbox));

    // An amount IDPay reports differently from the order: flagged, never paid.
    let short = idpay.create_payment("order-8", 100_000);
    idpay.set_status(&short, 10);
    let job = shop
        .verification(json!({ "gateway": "idpay", "reference": short, "amount": 200_000, "currency": "IRR", "order_id": "order-8" }))
        .await;
    assert_eq!(job["result"]["status"], "amount_mismatch", "{job}");
    // Not paid (405, error 53): pending, with IDPay's reason.
    let unpaid = idpay.create_payment("order-9", 100_000);
    let job = shop
        .verification(json!({ "gateway": "idpay", "reference": unpaid, "amount": 100_000, "currency": "IRR", "order_id": "order-9" }))
        .await;
    assert_eq!((job["result"]["status"].as_str(), job["result"]["gateway_code"].as_str()), (Some("pending"), Some("53")), "{job}");
    assert!(job["result"]["reason"].as_str().unwrap().contains("IDPay 53"));
}

#[tokio::test]
async fn bitpay_verifies_with_the_callbacks_trans_id() {
    let env = TestEnv::new("pay-bitpay").await;
    let mut shop = Shop::open(&env, "bitpay").await;
    let bitpay = BitPay::start().await;
    let _worker = worker(&env, &[bitpay.env()], &[]).await;
    shop.account("bitpay", json!({ "credentials": { "api_key": gateways::BITPAY_API_KEY }, "sandbox": true })).await;

    let id_get = bitpay.create_payment(150_000, "1001");
    let payment_id = shop
        .register(json!({ "gateway": "bitpay", "reference": id_get.to_string(), "amount": 150_000, "currency": "IRR", "order_id": "1001" }))
        .await;
    let trans_id = bitpay.pay(id_get);
    let (status, answer) = shop.callback_query("bitpay", &format!("trans_id={trans_id}&id_get={id_get}")).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("verifying")), "{answer}");
    let payment = shop.wait_payment(&payment_id, "verified").await;
    assert_eq!((payment["ref_id"].as_str(), payment["paid_amount"].as_i64()), (Some(trans_id.to_string().as_str()), Some(150_000)));
    assert_eq!(bitpay.endpoints(), ["/payment-test/"], "the sandbox account uses the test endpoint");

    // An unknown transaction (-4, a bare number) leaves the payment pending.
    let job = shop
        .verification(
            json!({ "gateway": "bitpay", "reference": "999", "trans_id": "12345", "amount": 1000, "currency": "IRR", "order_id": "x" }),
        )
        .await;
    assert_eq!((job["result"]["status"].as_str(), job["result"]["gateway_code"].as_str()), (Some("pending"), Some("-4")), "{job}");
}

#[tokio::test]
async fn stripe_events_are_authenticated_and_deduplicated() {
    let env = TestEnv::new("pay-stripe").await;
    let mut shop = Shop::open(&env, "stripe").await;
    let stripe = Stripe::start().await;
    let _worker = worker(&env, &[stripe.env()], &[]).await;
    let secret = "whsec_peyk_stripe_test_secret";
    shop.account("stripe", json!({ "credentials": { "secret_key": gateways::STRIPE_SECRET_KEY, "webhook_secret": secret } })).await;

    let intent = stripe.create_intent(1999, "usd", "succeeded");
    let payment_id =
        shop.register(json!({ "gateway": "stripe", "reference": intent, "amount": 1999, "currency": "USD", "order_id": "inv-1" })).await;
    let event =
        json!({ "id": "evt_1", "type": "payment_intent.succeeded", "data": { "object": { "id": intent, "object": "payment_intent" } } })
            .to_string();
    let now = chrono::Utc::now().timestamp();
    let post = |signature: String, body: String| {
        let shop = &shop;
        async move {
            shop.callback(
                "stripe",
                |r| r.header("Stripe-Signature", signature).header("content-type", "application/json").body(body),
                reqwest::Method::POST,
            )
            .await
        }
    };

    // Stale, tampered and unsigned events are refused before anything is recorded.
    let (status, answer) = post(gateways::stripe_signature_header(secret, now - 400, event.as_bytes(), &[]), event.clone()).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_signature")), "{answer}");
    let tampered = event.replace("succeeded", "canceled");
    let (status, _) = post(gateways::stripe_signature_header(secret, now, event.as_bytes(), &[]), tampered).await;
    assert_eq!(status, 400);
    let (status, _) = post(String::new(), event.clone()).await;
    assert_eq!(status, 400);
    // Several v1 values, one right (Stripe rolling the secret): accepted.
    let (status, answer) = post(gateways::stripe_signature_header(secret, now, event.as_bytes(), &["00ff"]), event.clone()).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("verifying")), "{answer}");
    let payment = shop.wait_payment(&payment_id, "verified").await;
    assert_eq!(payment["paid_amount"], 1999);
    // Stripe delivers again: the event id is recorded once.
    let (_, again) = post(gateways::stripe_signature_header(secret, now, event.as_bytes(), &[]), event.clone()).await;
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(stripe.verifications(&intent), 1);

    // Paid in another currency: a mismatch. Still processing: stays pending.
    let euros = stripe.create_intent(1999, "eur", "succeeded");
    let job =
        shop.verification(json!({ "gateway": "stripe", "reference": euros, "amount": 1999, "currency": "usd", "order_id": "inv-2" })).await;
    assert_eq!(job["result"]["status"], "amount_mismatch", "{job}");
    let processing = stripe.create_intent(500, "usd", "processing");
    let job = shop
        .verification(json!({ "gateway": "stripe", "reference": processing, "amount": 500, "currency": "usd", "order_id": "inv-3" }))
        .await;
    assert_eq!(
        (job["result"]["status"].as_str(), job["result"]["reason"].as_str()),
        (Some("pending"), Some("the PaymentIntent is `processing`")),
        "{job}"
    );
}

/// Submits a verification and waits for it to end (succeeded or failed).
async fn verification_outcome(shop: &Shop, payload: Value) -> Value {
    let id = shop.api.submit(&shop.key, &json!({ "type": "payment_verification", "payload": payload })).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let job = shop.api.job(&shop.key, &id).await;
        if job["status"] == "succeeded" || job["status"] == "failed" || job["status"] == "dead" {
            return job;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_error_class_of_each_gateway() {
    let env = TestEnv::new("pay-errors").await;
    let mut shop = Shop::open(&env, "errors").await;
    let (zarinpal, idpay, stripe, bitpay) = (Zarinpal::start().await, IdPay::start().await, Stripe::start().await, BitPay::start().await);
    let _worker = worker(&env, &[zarinpal.env(), idpay.env(), stripe.env(), bitpay.env()], &[("PEYK_PAYMENT_TIMEOUT_SECONDS", "1")]).await;
    shop.account("zarinpal", zarinpal_account()).await;

    // The gateway verified but its answer came too late: the retry gets 101, and the payment counts as paid.
    let slow = zarinpal.create_payment(10_000);
    zarinpal.pay(&slow);
    zarinpal.fail_next("verify", Failure::Hang(Duration::from_secs(3)));
    let job = verification_outcome(&shop, zarinpal_payment(&slow, 10_000, "o-slow")).await;
    assert_eq!(
        (job["result"]["status"].as_str(), job["result"]["paid"].as_bool(), job["attempts"].as_i64()),
        (Some("already_verified"), Some(true), Some(2)),
        "{job}"
    );
    // An authority Zarinpal does not know (-54): pending, with the reason.
    let job = verification_outcome(&shop, zarinpal_payment(&format!("A{:035}", 1), 10_000, "o-unknown")).await;
    assert_eq!((job["result"]["status"].as_str(), job["result"]["gateway_code"].as_str()), (Some("pending"), Some("-54")), "{job}");

    // Refused credentials fail at once, payment left pending: IDPay 403/12, BitPay -1, Stripe 401.
    shop.account("idpay", json!({ "credentials": { "api_key": "00000000-0000-0000-0000-000000000000" } })).await;
    shop.account("bitpay", json!({ "credentials": { "api_key": "wrong" } })).await;
    shop.account("stripe", json!({ "credentials": { "secret_key": "sk_test_wrong" } })).await;
    let id = idpay.create_payment("o-i", 1000);
    idpay.set_status(&id, 10);
    let id_get = bitpay.create_payment(1000, "o-b");
    let trans_id = bitpay.pay(id_get);
    let intent = stripe.create_intent(100, "usd", "succeeded");
    for payload in [
        json!({ "gateway": "idpay", "reference": id, "amount": 1000, "currency": "IRR", "order_id": "o-i" }),
        json!({ "gateway": "bitpay", "reference": id_get.to_string(), "trans_id": trans_id.to_string(), "amount": 1000, "currency": "IRR", "order_id": "o-b" }),
        json!({ "gateway": "stripe", "reference": intent, "amount": 100, "currency": "usd", "order_id": "o-s" }),
    ] {
        let job = verification_outcome(&shop, payload.clone()).await;
        assert_eq!(
            (job["status"].as_str(), job["error"]["code"].as_str(), job["attempts"].as_i64()),
            (Some("failed"), Some("gateway_account_refused"), Some(1)),
            "{payload}: {job}"
        );
    }
    let (_, pending) = shop.api.get("/v1/payments?status=pending", &shop.key).await;
    assert_eq!(pending["data"].as_array().unwrap().len(), 4, "the three and the unknown authority: {pending}");

    // With the right key: a Stripe intent that does not exist (404) is not paid.
    shop.account("stripe", json!({ "credentials": { "secret_key": gateways::STRIPE_SECRET_KEY } })).await;
    let job = verification_outcome(
        &shop,
        json!({ "gateway": "stripe", "reference": "pi_doesnotexist", "amount": 100, "currency": "usd", "order_id": "o-404" }),
    )
    .await;
    assert_eq!(
        (job["result"]["status"].as_str(), job["result"]["gateway_code"].as_str()),
        (Some("pending"), Some("resource_missing")),
        "{job}"
    );
    // …and a 500 from Stripe is retried.
    stripe.fail_next(
        "retrieve",
        Failure::Status { http: 500, body: r#"{"error":{"type":"api_error","message":"An unknown error occurred"}}"#.into() },
    );
    let job = verification_outcome(
        &shop,
        json!({ "gateway": "stripe", "reference": intent, "amount": 100, "currency": "usd", "order_id": "o-s" }),
    )
    .await;
    assert_eq!((job["result"]["status"].as_str(), job["attempts"].as_i64()), (Some("verified"), Some(2)), "{job}");
}

#[tokio::test]
async fn lost_callbacks_are_recovered_by_reconcile() {
    let env = TestEnv::new("pay-reconcile").await;
    let mut shop = Shop::open(&env, "reconcile").await;
    let (zarinpal, idpay, stripe, bitpay) = (Zarinpal::start().await, IdPay::start().await, Stripe::start().await, BitPay::start().await);
    let settings = [("PEYK_PAYMENT_RECONCILE_SECONDS", "0.5"), ("PEYK_PAYMENT_RECONCILE_AFTER_SECONDS", "0")];
    let _worker = worker(&env, &[zarinpal.env(), idpay.env(), stripe.env(), bitpay.env()], &settings).await;
    shop.account("zarinpal", zarinpal_account()).await;
    shop.account("idpay", json!({ "credentials": { "api_key": gateways::IDPAY_API_KEY } })).await;
    shop.account("stripe", json!({ "credentials": { "secret_key": gateways::STRIPE_SECRET_KEY } })).await;
    shop.account("bitpay", json!({ "credentials": { "api_key": gateways::BITPAY_API_KEY } })).await;

    // Paid, and the callback never arrived: Zarinpal lists it as unverified, IDPay's inquiry says 10.
    let paid = zarinpal.create_payment(80_000);
    let paid_id = shop.register(zarinpal_payment(&paid, 80_000, "o-lost")).await;
    let waiting = zarinpal.create_payment(10_000);
    let waiting_id = shop.register(zarinpal_payment(&waiting, 10_000, "o-waiting")).await;
    let idpay_paid = idpay.create_payment("o-idpay", 50_000);
    let idpay_paid_id = shop
        .register(json!({ "gateway": "idpay", "reference": idpay_paid, "amount": 50_000, "currency": "IRR", "order_id": "o-idpay" }))
        .await;
    let idpay_unpaid = idpay.create_payment("o-idpay-2", 50_000);
    let idpay_unpaid_id = shop
        .register(json!({ "gateway": "idpay", "reference": idpay_unpaid, "amount": 50_000, "currency": "IRR", "order_id": "o-idpay-2" }))
        .await;
    let intent = stripe.create_intent(1200, "usd", "processing");
    let intent_id =
        shop.register(json!({ "gateway": "stripe", "reference": intent, "amount": 1200, "currency": "usd", "order_id": "o-stripe" })).await;
    let id_get = bitpay.create_payment(20_000, "o-bitpay");
    let bitpay_id = shop
        .register(
            json!({ "gateway": "bitpay", "reference": id_get.to_string(), "amount": 20_000, "currency": "IRR", "order_id": "o-bitpay" }),
        )
        .await;
    zarinpal.pay(&paid);
    idpay.set_status(&idpay_paid, 10);
    // One inquiry is refused: that payment is reported and looked at next
    // round; the reconcile job does not fail, and the others go on.
    idpay.fail_next("inquiry", Failure::Status { http: 403, body: r#"{"error_code":11,"error_message":"blocked"}"#.into() });

    assert_eq!(shop.wait_payment(&paid_id, "verified").await["paid"], true);
    assert_eq!(shop.wait_payment(&idpay_paid_id, "verified").await["paid"], true);
    let with_errors = "SELECT count(*) AS n FROM jobs WHERE job_type = 'payment_reconcile' AND jsonb_array_length(result->'errors') > 0";
    assert_eq!(env.sql_count(with_errors).await, 1);
    assert_eq!(
        env.sql_count("SELECT count(*) AS n FROM jobs WHERE job_type = 'payment_reconcile' AND status IN ('failed', 'dead')").await,
        0
    );
    assert!(zarinpal.calls("unverified") >= 1 && idpay.calls("inquiry") >= 2);
    // A Stripe intent still processing stays pending; once it succeeds, the next round verifies it.
    while stripe.calls("retrieve") < 1 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(shop.payment(&intent_id).await["status"], "pending");
    stripe.set_status(&intent, "succeeded", 1200);
    shop.wait_payment(&intent_id, "verified").await;

    // Unpaid ones are never verified early (that would fail them while the
    // payer may still pay), and BitPay cannot be verified without its callback's trans_id.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for id in [&waiting_id, &idpay_unpaid_id, &bitpay_id] {
        assert_eq!(shop.payment(id).await["status"], "pending", "{id}");
    }
    assert_eq!((zarinpal.verifications(&waiting), zarinpal.calls("verify")), (0, 1));
    assert_eq!((idpay.verifications(&idpay_unpaid), idpay.calls("verify")), (0, 1));
    assert_eq!(bitpay.calls("verify"), 0);
    // …so reconcile does not even queue a job for it.
    assert_eq!(
        env.sql_count("SELECT count(*) AS n FROM jobs WHERE job_type = 'payment_reconcile' AND payload->>'gateway' = 'bitpay'").await,
        0
    );
    assert!(
        env.sql_count("SELECT count(*) AS n FROM jobs WHERE job_type = 'payment_reconcile' AND payload->>'gateway' = 'idpay'").await >= 1
    );
}

#[tokio::test]
async fn payments_are_validated_and_private_to_their_tenant() {
    let env = TestEnv::new("pay-validation").await;
    let mut shop = Shop::open(&env, "first").await;
    let other_key = env.create_key("second").await;

    let (status, body) = shop.api.post("/v1/payments", &shop.key, &zarinpal_payment(&"A".repeat(36), 1000, "o")).await;
    assert_eq!((status, body["error"]["details"]["errors"][0]["field"].as_str()), (422, Some("gateway")), "no account yet: {body}");
    let (status, body) = shop
        .api
        .request(
            reqwest::Method::PUT,
            "/v1/payment-accounts/zarinpal",
            Some(&shop.key),
            Some(&json!({ "credentials": { "merchant": "x" } })),
        )
        .await;
    assert_eq!((status, body["error"]["details"]["errors"][0]["field"].as_str()), (422, Some("credentials.merchant")), "{body}");
    let (status, _) =
        shop.api.request(reqwest::Method::PUT, "/v1/payment-accounts/paypal", Some(&shop.key), Some(&zarinpal_account())).await;
    assert_eq!(status, 422);
    shop.account("zarinpal", zarinpal_account()).await;
    let (_, accounts) = shop.api.get("/v1/payment-accounts", &shop.key).await;
    assert!(!accounts.to_string().contains(gateways::ZARINPAL_MERCHANT), "credentials are never shown: {accounts}");

    let bad = json!({ "gateway": "zarinpal", "reference": "short", "amount": -5, "currency": "usd", "order_id": "" });
    let (status, body) = shop.api.post("/v1/payments", &shop.key, &bad).await;
    let fields: Vec<&str> = body["error"]["details"]["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!((status, fields), (422, vec!["reference", "amount", "currency", "order_id"]), "{body}");

    let authority = "A".to_string() + &"0".repeat(35);
    let id = shop.register(zarinpal_payment(&authority, 5000, "o-1")).await;
    let (status, same) = shop.api.post("/v1/payments", &shop.key, &zarinpal_payment(&authority, 5000, "o-1")).await;
    assert_eq!((status, same["payment_id"].as_str()), (200, Some(id.as_str())));
    let (status, body) = shop.api.post("/v1/payments", &shop.key, &zarinpal_payment(&authority, 9000, "o-1")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("payment_conflict")), "{body}");

    // Another tenant sees nothing; a callback naming the wrong tenant finds no account.
    let (status, _) = shop.api.get(&format!("/v1/payments/{id}"), &other_key).await;
    assert_eq!(status, 404);
    let (_, list) = shop.api.get("/v1/payments", &other_key).await;
    assert_eq!(list["data"], json!([]));
    let (status, _) = shop
        .api
        .request(reqwest::Method::GET, &format!("/v1/callbacks/zarinpal/{}?Authority={authority}&Status=OK", uuid_like()), None, None)
        .await;
    assert_eq!(status, 404);
    // Reconcile jobs are Peyk's own: a client cannot submit one.
    let (status, body) =
        shop.api.post("/v1/jobs", &shop.key, &json!({ "type": "payment_reconcile", "payload": { "gateway": "zarinpal" } })).await;
    assert_eq!((status, body["error"]["details"]["errors"][0]["field"].as_str()), (422, Some("type")), "{body}");
    let (status, body) = shop.zarinpal_callback("", "OK").await;
    assert_eq!((status, body["error"]["details"]["errors"][0]["field"].as_str()), (422, Some("Authority")), "{body}");
}

fn uuid_like() -> &'static str {
    "0190c0de-7d3a-7cc1-a3c5-1f2e3d4c5b6a"
}

/// Standard Webhooks signature computed here, independently of Peyk.
fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let key = base64::engine::general_purpose::STANDARD.decode(secret.trim_start_matches("whsec_")).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn standard_webhooks_from_other_providers_are_verified_and_stored_once() {
    let env = TestEnv::new("pay-inbound").await;
    let shop = Shop::open(&env, "inbound").await;
    let (status, source) =
        shop.api.request(reqwest::Method::PUT, "/v1/inbound-sources/lab-results", Some(&shop.key), Some(&json!({}))).await;
    assert_eq!(status, 200, "{source}");
    let secret = source["secret"].as_str().unwrap();
    let url = format!("{}{}", shop.api.url, source["path"].as_str().unwrap());
    let body = r#"{"type":"report.ready","data":{"report":"r-1"}}"#;
    let send = |id: &'static str, timestamp: i64, signature: String| {
        shop.api
            .http
            .post(&url)
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let now = chrono::Utc::now().timestamp();
    let response = send("msg_1", now, format!("v1,AAAA {}", standard_signature(secret, "msg_1", now, body))).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["duplicate"], false);
    let again: Value = send("msg_1", now, standard_signature(secret, "msg_1", now, body)).await.unwrap().json().await.unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(send("msg_2", now, standard_signature(secret, "msg_1", now, body)).await.unwrap().status().as_u16(), 401);
    assert_eq!(send("msg_3", now - 600, standard_signature(secret, "msg_3", now - 600, body)).await.unwrap().status().as_u16(), 401);
    assert_eq!(
        send("msg_4", now, standard_signature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_4", now, body))
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );

    let (_, events) = shop.api.get("/v1/inbound-events?source=lab-results", &shop.key).await;
    let events = events["data"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0]["event_type"].as_str(), events[0]["body"].as_str()), (Some("report.ready"), Some(body)));
}

/// An endpoint of the shop's that receives every payment event; returns its sink.
async fn payment_events(shop: &Shop) -> peyk_tests::Sink {
    let sink = peyk_tests::Sink::start().await;
    let body = json!({ "url": sink.url, "event_types": ["payment.succeeded", "payment.failed", "payment.needs_review"] });
    let (status, endpoint) = shop.api.post("/v1/webhook-endpoints", &shop.key, &body).await;
    assert_eq!(status, 201, "{endpoint}");
    sink
}

/// Waits until no verification job of the shop is waiting or running.
async fn verifications_settle(env: &TestEnv) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while env
        .sql_count(
            "SELECT count(*) AS n FROM jobs WHERE job_type = 'payment_verification' AND status IN ('queued', 'scheduled', 'running')",
        )
        .await
        > 0
    {
        assert!(tokio::time::Instant::now() < deadline, "verifications still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Anyone who knows a payment's reference can send its callback before the
/// payer has paid. Such a callback is only a reason to ask the gateway; the
/// gateway's "not paid yet" settles nothing, and the real callback later
/// verifies the payment — for every browser gateway.
#[tokio::test]
async fn a_forged_callback_before_payment_does_not_fail_the_payment() {
    let env = TestEnv::new("pay-forged").await;
    let mut shop = Shop::open(&env, "forged").await;
    let (zarinpal, idpay, bitpay) = (Zarinpal::start().await, IdPay::start().await, BitPay::start().await);
    let _worker = worker(&env, &[zarinpal.env(), idpay.env(), bitpay.env()], &[]).await;
    shop.account("zarinpal", zarinpal_account()).await;
    shop.account("idpay", json!({ "credentials": { "api_key": gateways::IDPAY_API_KEY } })).await;
    shop.account("bitpay", json!({ "credentials": { "api_key": gateways::BITPAY_API_KEY } })).await;
    let events = payment_events(&shop).await;

    // Zarinpal: `Status=OK` before the payer paid.
    let authority = zarinpal.create_payment(90_000);
    let zarinpal_id = shop.register(zarinpal_payment(&authority, 90_000, "o-z")).await;
    let (_, forged) = shop.zarinpal_callback(&authority, "OK").await;
    assert_eq!(forged["status"], "verifying", "{forged}");
    verifications_settle(&env).await;
    let payment = shop.payment(&zarinpal_id).await;
    assert_eq!((payment["status"].as_str(), payment["gateway_code"].as_str()), (Some("pending"), Some("-51")), "{payment}");
    zarinpal.pay(&authority);
    let (_, real) = shop.zarinpal_callback(&authority, "OK").await;
    assert_eq!(
        (real["status"].as_str(), real["duplicate"].as_bool()),
        (Some("verifying"), Some(true)),
        "the same dedupe key, verified again: {real}"
    );
    shop.wait_payment(&zarinpal_id, "verified").await;

    // IDPay: `status=10` (and a padded one) before the payer paid.
    let id = idpay.create_payment("o-i", 40_000);
    let idpay_id =
        shop.register(json!({ "gateway": "idpay", "reference": id, "amount": 40_000, "currency": "IRR", "order_id": "o-i" })).await;
    let post_idpay = |status: &str| {
        let body = json!({ "status": status, "id": id, "order_id": "o-i", "track_id": "1", "amount": "40000" });
        shop.callback("idpay", move |r| r.json(&body), reqwest::Method::POST)
    };
    assert_eq!(post_idpay("10").await.1["status"], "verifying");
    verifications_settle(&env).await;
    assert_eq!(shop.payment(&idpay_id).await["status"], "pending");
    let (_, padded) = post_idpay(" 10 ").await;
    assert_eq!(padded["duplicate"], true, "an untrimmed status is the same callback: {padded}");
    verifications_settle(&env).await;
    idpay.set_status(&id, 10);
    post_idpay("10").await;
    shop.wait_payment(&idpay_id, "verified").await;

    // BitPay: a made-up trans_id first. It fails verification and does not
    // stand in the real one's way; the trans_id stored is the one that verified.
    let id_get = bitpay.create_payment(30_000, "o-b");
    let bitpay_id = shop
        .register(json!({ "gateway": "bitpay", "reference": id_get.to_string(), "amount": 30_000, "currency": "IRR", "order_id": "o-b" }))
        .await;
    shop.callback_query("bitpay", &format!("trans_id=424242&id_get={id_get}")).await;
    verifications_settle(&env).await;
    assert_eq!(shop.payment(&bitpay_id).await["status"], "pending");
    let trans_id = bitpay.pay(id_get);
    shop.callback_query("bitpay", &format!("trans_id={trans_id}&id_get={id_get}")).await;
    let payment = shop.wait_payment(&bitpay_id, "verified").await;
    assert_eq!(payment["ref_id"], trans_id.to_string(), "{payment}");
    shop.callback_query("bitpay", &format!("trans_id=515151&id_get={id_get}")).await;
    verifications_settle(&env).await;
    let stored = env.sql_count(&format!("SELECT count(*) AS n FROM payments WHERE trans_id = '{trans_id}'")).await;
    assert_eq!(stored, 1, "a later forged trans_id never replaces the one that verified");

    // One payment.succeeded per payment, and no payment.failed.
    let received = events.wait_for(3, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let types: Vec<String> =
        events.received().iter().map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["type"].as_str().unwrap().to_string()).collect();
    assert_eq!(types, ["payment.succeeded"; 3], "{received:?}");
}

/// A forged callback that comes while the real one's verification... the
/// other way round: the real callback arrives while a forged one's
/// verification is still asking the gateway. It queues nothing (one
/// verification in flight), but that verification asks once more.
#[tokio::test]
async fn the_real_callback_during_a_forged_ones_verification_is_not_lost() {
    let env = TestEnv::new("pay-recheck").await;
    let mut shop = Shop::open(&env, "recheck").await;
    let zarinpal = Zarinpal::start().await;
    let _worker = worker(&env, &[zarinpal.env()], &[]).await;
    shop.account("zarinpal", zarinpal_account()).await;
    let authority = zarinpal.create_payment(10_000);
    let id = shop.register(zarinpal_payment(&authority, 10_000, "o-r")).await;
    let held = zarinpal.hold_next("verify");
    shop.zarinpal_callback(&authority, "OK").await;
    while zarinpal.calls("verify") < 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The forged verification is at the gateway; the payer pays and the real callback comes.
    zarinpal.pay(&authority);
    let (_, real) = shop.zarinpal_callback(&authority, "OK").await;
    assert!(real["verification_job_id"].is_null(), "one verification in flight: {real}");
    held.notify_one();
    shop.wait_payment(&id, "verified").await;
    assert_eq!(env.sql_count("SELECT count(*) AS n FROM jobs WHERE job_type = 'payment_verification'").await, 1);
}

/// A thousand forged callbacks for one payment (every status and trans_id
/// varied) queue a few verifications and store a bounded number of rows;
/// one sender past its per-minute budget gets 429.
#[tokio::test]
async fn a_thousand_forged_callbacks_cost_a_bounded_amount() {
    let env = TestEnv::new("pay-flood").await;
    let key = env.create_key("flood").await;
    let api = env.start_api_with(&[("PEYK_PUBLIC_RATE_PER_MINUTE", "100000")]).await;
    let mut shop = Shop { api, key, tenant: String::new() };
    let (zarinpal, bitpay) = (Zarinpal::start().await, BitPay::start().await);
    // No worker yet: the verifications stay queued, so "one in flight" holds throughout.
    shop.account("zarinpal", zarinpal_account()).await;
    shop.account("bitpay", json!({ "credentials": { "api_key": gateways::BITPAY_API_KEY } })).await;
    let authority = zarinpal.create_payment(10_000);
    let zarinpal_id = shop.register(zarinpal_payment(&authority, 10_000, "o-f")).await;
    let id_get = bitpay.create_payment(10_000, "o-fb");
    let bitpay_id = shop
        .register(json!({ "gateway": "bitpay", "reference": id_get.to_string(), "amount": 10_000, "currency": "IRR", "order_id": "o-fb" }))
        .await;

    let (shop, authority) = (&shop, &authority);
    // 64 in flight: what this asserts is the cost of each callback. A
    // thousand at once on a slow machine under the rest of the suite would
    // queue some past the database pool's 5 s wait — answered `503` with
    // `Retry-After`, which is the right answer to overload but not this
    // test's subject (CI saw 92 of 1,000 so on 2026-12-03).
    let answers: Vec<u16> = futures::stream::iter(0..1000)
        .map(|n| async move {
            if n % 2 == 0 {
                shop.zarinpal_callback(authority, if n % 4 == 0 { "OK" } else { "NOK" }).await.0
            } else {
                shop.callback_query("bitpay", &format!("trans_id={}&id_get={id_get}", 9_000_000 + n)).await.0
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(answers.iter().all(|s| *s == 200), "{:?}", answers.iter().filter(|s| **s != 200).collect::<Vec<_>>());
    // One verification per payment while it waits; at most 3 a minute anyway.
    for (payment, name) in [(&zarinpal_id, "zarinpal"), (&bitpay_id, "bitpay")] {
        let jobs = env.sql_count(&format!("SELECT count(*) AS n FROM jobs WHERE job_type = 'payment_verification' AND payload->>'reference' = (SELECT reference FROM payments WHERE id = '{payment}')")).await;
        assert_eq!(jobs, 1, "{name}");
        let rows = env.sql_count(&format!("SELECT count(*) AS n FROM inbound_events WHERE payment_id = '{payment}'")).await;
        assert!(rows <= 20, "{name}: {rows} callbacks stored");
        let candidates =
            env.sql_count(&format!("SELECT cardinality(trans_id_candidates)::bigint AS n FROM payments WHERE id = '{payment}'")).await;
        assert!(candidates <= 5, "{name}: {candidates} candidates kept");
    }
    // Callbacks for payments that do not exist: answered, counted, a sample stored.
    for n in 0..50 {
        shop.zarinpal_callback(&format!("A{:035}", 100 + n), "OK").await;
    }
    let unknown = env.sql_count("SELECT count(*) AS n FROM inbound_events WHERE payment_id IS NULL").await;
    assert!(unknown <= 10, "{unknown} unknown-payment callbacks stored");
    let metrics = shop.api.metrics().await;
    assert!(metrics.contains(r#"peyk_payment_callbacks_total{gateway="zarinpal",result="unknown_payment"} 50"#), "{metrics}");

    // A sender over its budget: 429 with Retry-After.
    let strict = env.start_api_with(&[("PEYK_PUBLIC_RATE_PER_MINUTE", "5")]).await;
    let url = format!("{}/v1/callbacks/zarinpal/{}?Authority={authority}&Status=NOK", strict.url, shop.tenant);
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let response = strict.http.get(&url).send().await.unwrap();
        if response.status() == 429 {
            assert!(response.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
}

/// A gateway answer that says paid without an amount is never credited:
/// IDPay's is completed from its inquiry; BitPay's bare "1" goes to review.
/// Unpaid settles as failed only past expiry, and a later "paid" wins.
/// Callbacks that arrive together are recorded together (in batches, one
/// statement and one commit each): every callback must still get its own
/// answer, and a replay in the same batch must see the first.
#[tokio::test]
async fn callbacks_recorded_together_are_each_answered_for_themselves() {
    let env = TestEnv::new("pay-batched").await;
    let key = env.create_key("batched").await;
    let api = env.start_api_with(&[("PEYK_PUBLIC_RATE_PER_MINUTE", "100000")]).await;
    let mut shop = Shop { api, key, tenant: String::new() };
    let zarinpal = Zarinpal::start().await;
    shop.account("zarinpal", zarinpal_account()).await;
    let mut payments = Vec::new();
    for n in 0..150 {
        let authority = zarinpal.create_payment(10_000 + n);
        let id = shop.register(zarinpal_payment(&authority, 10_000 + n, &format!("o-b{n}"))).await;
        payments.push((authority, id));
    }

    // Each payment's callback twice, all at once.
    let (shop, count) = (&shop, payments.len());
    let authorities: Vec<&str> = payments.iter().map(|(authority, _)| authority.as_str()).collect();
    let authorities = &authorities;
    let answers: Vec<(usize, (u16, Value))> = futures::future::join_all(
        (0..count * 2).map(|n| async move { (n % count, shop.zarinpal_callback(authorities[n % count], "OK").await) }),
    )
    .await;
    for (index, (authority, payment)) in payments.iter().enumerate() {
        let mine: Vec<&Value> = answers
            .iter()
            .filter(|(i, _)| *i == index)
            .map(|(_, (status, body))| {
                assert_eq!(*status, 200, "{body}");
                body
            })
            .collect();
        assert!(mine.iter().all(|a| a["payment_id"] == payment.as_str()), "{authority}: {mine:?}");
        let first: Vec<&&Value> = mine.iter().filter(|a| a["duplicate"] == false).collect();
        assert_eq!(first.len(), 1, "{authority}: one recorded, one replay: {mine:?}");
        let job = env
            .sql_count(&format!(
                "SELECT count(*) AS n FROM jobs WHERE id = '{}' AND payload->>'reference' = '{authority}'",
                first[0]["verification_job_id"].as_str().expect("the recorded callback queued the verification")
            ))
            .await;
        assert_eq!(job, 1, "{authority}: the answer names this payment's verification");
    }
    assert_eq!(env.sql_count("SELECT count(*) AS n FROM inbound_events").await, 150);
    assert_eq!(env.sql_count("SELECT count(*) AS n FROM jobs WHERE job_type = 'payment_verification'").await, 150);
}

#[tokio::test]
async fn amounts_are_always_compared_and_paid_wins_over_expired() {
    let env = TestEnv::new("pay-amounts").await;
    let mut shop = Shop::open(&env, "amounts").await;
    let (zarinpal, idpay, bitpay) = (Zarinpal::start().await, IdPay::start().await, BitPay::start().await);
    let worker = worker(&env, &[zarinpal.env(), idpay.env(), bitpay.env()], &[("PEYK_PAYMENT_EXPIRE_SECONDS", "2")]).await;
    let worker_metrics = || async { reqwest::get(format!("{}/metrics", worker.metrics_url)).await.unwrap().text().await.unwrap() };
    shop.account("zarinpal", zarinpal_account()).await;
    shop.account("idpay", json!({ "credentials": { "api_key": gateways::IDPAY_API_KEY } })).await;
    shop.account("bitpay", json!({ "credentials": { "api_key": gateways::BITPAY_API_KEY } })).await;
    let events = payment_events(&shop).await;

    let id_get = bitpay.create_payment(10_000, "o-bare");
    let trans_id = bitpay.pay(id_get);
    bitpay.fail_next("verify", Failure::Status { http: 200, body: "1".into() });
    let job = shop.verification(json!({ "gateway": "bitpay", "reference": id_get.to_string(), "trans_id": trans_id.to_string(), "amount": 10_000, "currency": "IRR", "order_id": "o-bare" })).await;
    assert_eq!((job["result"]["status"].as_str(), job["result"]["paid"].as_bool()), (Some("needs_review"), Some(false)), "{job}");
    let metrics = worker_metrics().await;
    assert!(metrics.contains(r#"peyk_payments_total{gateway="bitpay",status="needs_review"} 1"#), "{metrics}");

    let id = idpay.create_payment("o-noamount", 70_000);
    idpay.set_status(&id, 10);
    let no_amount =
        json!({ "status": 100, "track_id": "7", "id": id, "order_id": "o-noamount", "payment": { "card_no": "603799******7999" } });
    idpay.fail_next("verify", Failure::Status { http: 200, body: no_amount.to_string() });
    let job = shop
        .verification(json!({ "gateway": "idpay", "reference": id, "amount": 80_000, "currency": "IRR", "order_id": "o-noamount" }))
        .await;
    assert_eq!(job["result"]["status"], "amount_mismatch", "the inquiry's 70,000 against the order's 80,000: {job}");
    assert!(idpay.calls("inquiry") >= 1);

    // Unpaid and past expiry (2 s here): failed. Then the payer's money
    // arrives after all: the gateway says paid, and paid wins.
    let authority = zarinpal.create_payment(20_000);
    let payment_id = shop.register(zarinpal_payment(&authority, 20_000, "o-late")).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let job = shop.verification(zarinpal_payment(&authority, 20_000, "o-late")).await;
    assert_eq!(job["result"]["status"], "failed", "{job}");
    zarinpal.pay(&authority);
    shop.zarinpal_callback(&authority, "OK").await;
    let payment = shop.wait_payment(&payment_id, "verified").await;
    assert_eq!(payment["reversed_from"], "failed", "{payment}");
    let metrics = worker_metrics().await;
    assert!(metrics.contains(r#"peyk_payment_reversals_total{gateway="zarinpal"} 1"#), "{metrics}");

    // needs_review, failed (the mismatch), failed (expired), succeeded (reversed): in any order.
    let received = events.wait_for(4, WAIT).await;
    let mut types: Vec<String> =
        received.iter().map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["type"].as_str().unwrap().to_string()).collect();
    types.sort();
    assert_eq!(types, ["payment.failed", "payment.failed", "payment.needs_review", "payment.succeeded"], "{types:?}");
}

/// The gateway verified the payment, then the worker died before recording
/// it; the next worker gets "already verified" and records it. The event
/// is stored with the outcome and delivered once as one message: when the
/// worker delivering it dies too, the redelivery carries the same
/// `webhook-id`.
#[tokio::test]
async fn workers_killed_mid_verification_and_mid_delivery_announce_the_payment_once() {
    let env = TestEnv::new("pay-kill").await;
    let mut shop = Shop::open(&env, "kill").await;
    let zarinpal = Zarinpal::start().await;
    let lease = [("PEYK_LEASE_SECONDS", "3")];
    shop.account("zarinpal", zarinpal_account()).await;
    let events = payment_events(&shop).await;
    // The first delivery hangs (the worker delivering it is killed meanwhile).
    events.reply([peyk_tests::Reply::status(200).delay(Duration::from_secs(120))]);

    let authority = zarinpal.create_payment(55_000);
    let id = shop.register(zarinpal_payment(&authority, 55_000, "o-k")).await;
    zarinpal.pay(&authority);
    let held = zarinpal.hold_next("verify");
    let mut first = worker(&env, &[zarinpal.env()], &lease).await;
    shop.zarinpal_callback(&authority, "OK").await;
    while zarinpal.verifications(&authority) < 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Zarinpal has verified (the money is captured); its answer is held, and the worker dies.
    first.kill9();
    let _ = first.wait_exit(Duration::from_secs(5)).await;
    held.notify_one();

    let mut second = worker(&env, &[zarinpal.env()], &lease).await;
    let payment = shop.wait_payment(&id, "already_verified").await;
    assert_eq!(payment["paid"], true);
    events.wait_for(1, WAIT).await;
    second.kill9();
    let _ = second.wait_exit(Duration::from_secs(5)).await;
    let _third = worker(&env, &[zarinpal.env()], &lease).await;
    let received = events.wait_for(2, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(events.count(), 2, "one cut off, one delivered: {received:?}");
    assert_eq!(received[0].headers["webhook-id"], received[1].headers["webhook-id"], "a redelivery is the same message");
    assert_eq!(serde_json::from_slice::<Value>(&received[1].body).unwrap()["type"], "payment.succeeded");
    assert_eq!(env.sql_count("SELECT count(*) AS n FROM webhook_messages WHERE event_type = 'payment.succeeded'").await, 1);
}

/// Inbound events are deleted after their retention, by the fleet's
/// reconcile leader, in batches; newer ones stay.
#[tokio::test]
async fn inbound_events_past_their_retention_are_pruned() {
    let env = TestEnv::new("pay-prune").await;
    let mut shop = Shop::open(&env, "prune").await;
    let zarinpal = Zarinpal::start().await;
    shop.account("zarinpal", zarinpal_account()).await;
    for n in 0..3 {
        shop.zarinpal_callback(&format!("A{:035}", 900 + n), "NOK").await;
    }
    env.sql_exec("UPDATE inbound_events SET received_at = now() - interval '2 days' WHERE dedupe_key LIKE '%901:NOK'").await;
    assert_eq!(env.sql_count("SELECT count(*) AS n FROM inbound_events").await, 3);
    let settings = [("PEYK_PAYMENT_RECONCILE_SECONDS", "0.3"), ("PEYK_INBOUND_RETENTION_DAYS", "1")];
    let _worker = worker(&env, &[zarinpal.env()], &settings).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while env.sql_count("SELECT count(*) AS n FROM inbound_events").await != 2 {
        assert!(tokio::time::Instant::now() < deadline, "the old callback was not pruned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(env.sql_count("SELECT count(*) AS n FROM inbound_events WHERE dedupe_key LIKE '%901:NOK'").await, 0);
}
