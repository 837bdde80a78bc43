//! The worker's own small HTTP server: `/metrics` for Prometheus and
//! `/healthz` for orchestrators.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use peyk_queue::runner::Runner;
use peyk_queue::Clients;

async fn metrics<C: Clients>(runner: Arc<Runner<C>>) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    let redis_up = matches!(tokio::time::timeout(Duration::from_secs(1), runner.queue.ping()).await, Ok(Ok(())));
    peyk_jobs::metrics::refresh_connection_gauges(&runner.pool, redis_up);
    crate::gpu::refresh();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], peyk_jobs::metrics::render())
}

pub async fn serve<C: Clients>(addr: SocketAddr, runner: Arc<Runner<C>>, stop: CancellationToken) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        .route("/metrics", get(move || metrics(runner.clone())));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "worker metrics and health listening");
    axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await?;
    Ok(())
}
