//! `peyk-bench-sink ADDR`: the local HTTP endpoint the delivery benchmarks
//! send to. Webhooks get `200 ok`; Kavenegar calls
//! (`/v1/{key}/sms|verify/...`) get Kavenegar's success envelope with one
//! message entry, as the real API answers a one-number send. Zarinpal
//! verifications (`/pg/v4/payment/verify.json`) get code 100 after
//! `PEYK_BENCH_GATEWAY_DELAY_MS` (default 0), a gateway's response time.
//! Reports on stdout, once a second, how many requests it has received.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9999".into());
    let gateway_delay = Duration::from_millis(std::env::var("PEYK_BENCH_GATEWAY_DELAY_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0));
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let app = axum::Router::new().fallback(move |request: Request| {
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        let kavenegar = request.uri().path().starts_with("/v1/");
        let zarinpal = request.uri().path() == "/pg/v4/payment/verify.json";
        async move {
            if zarinpal {
                tokio::time::sleep(gateway_delay).await;
                let body = format!(
                    r#"{{"data":{{"code":100,"message":"Verified","card_hash":"1EBE3EBEBE35C7EC0F8D6EE4F2F859107A87822CA179BC9528767EA7B5489B69","card_pan":"502229******5995","ref_id":{n},"fee_type":"Merchant","fee":0}},"errors":[]}}"#
                );
                ([(CONTENT_TYPE, "application/json")], body).into_response()
            } else if kavenegar {
                let body = format!(
                    r#"{{"return":{{"status":200,"message":"تایید شد"}},"entries":[{{"messageid":{n},"message":"","status":1,"statustext":"در صف ارسال","sender":"10004346","receptor":"09121234567","date":{},"cost":1200}}]}}"#,
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
                );
                ([(CONTENT_TYPE, "application/json")], body).into_response()
            } else {
                "ok".into_response()
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tokio::spawn(async move {
        let mut last = u64::MAX;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = received.load(Ordering::Relaxed);
            if now != last {
                println!("{now}");
                last = now;
            }
        }
    });
    axum::serve(listener, app).await?;
    Ok(())
}
