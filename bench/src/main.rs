//! `peyk-bench-sink ADDR`: the local HTTP endpoint the delivery benchmark
//! sends webhooks to. Answers 200 to everything and reports on stdout, once
//! a second, how many requests it has received in all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9999".into());
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let app = axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        async { "ok" }
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
