//! The worker's own small HTTP server: `/metrics` for Prometheus and
//! `/healthz` for orchestrators.

use std::net::SocketAddr;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

pub async fn serve(addr: SocketAddr, stop: CancellationToken) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        .route(
            "/metrics",
            get(|| async { ([(CONTENT_TYPE, "text/plain; version=0.0.4")], peyk_jobs::metrics::render()) }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "worker metrics and health listening");
    axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await?;
    Ok(())
}
