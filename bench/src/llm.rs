//! `peyk-bench-llm ADDR DELAY_MS`: a fake OpenAI-compatible chat API for
//! `bench/llm.sh`. Every `POST /v1/chat/completions` is answered after
//! exactly DELAY_MS (a timer, no thread per request) with a valid
//! `medical_summary` output and usage, so that what a job takes beyond
//! DELAY_MS is Peyk's own cost. `GET /stats` reports requests served and
//! the most that were in flight at once (the worker's real concurrency).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::{get, post};

#[derive(Default)]
struct Stats {
    served: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

const ANSWER: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"{\"summary\":\"Dry cough and mild fever for three days.\",\"key_points\":[\"dry cough\",\"mild fever\"]}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":250,"completion_tokens":30,"total_tokens":280}}"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:19998".into());
    let delay = Duration::from_millis(std::env::args().nth(2).and_then(|d| d.parse().ok()).unwrap_or(200));
    let stats = Arc::new(Stats::default());
    let for_chat = stats.clone();
    let for_stats = stats.clone();
    let app = axum::Router::new()
        .route(
            "/v1/chat/completions",
            post(move |_body: axum::body::Bytes| {
                let stats = for_chat.clone();
                async move {
                    let now = stats.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
                    stats.max_in_flight.fetch_max(now, Ordering::Relaxed);
                    tokio::time::sleep(delay).await;
                    stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                    stats.served.fetch_add(1, Ordering::Relaxed);
                    ([(CONTENT_TYPE, "application/json")], ANSWER).into_response()
                }
            }),
        )
        .route(
            "/stats",
            get(move || {
                let stats = for_stats.clone();
                async move {
                    format!(
                        "{{\"served\":{},\"in_flight\":{},\"max_in_flight\":{}}}\n",
                        stats.served.load(Ordering::Relaxed),
                        stats.in_flight.load(Ordering::Relaxed),
                        stats.max_in_flight.load(Ordering::Relaxed)
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
