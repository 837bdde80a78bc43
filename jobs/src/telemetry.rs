//! Logging set-up shared by the binaries: JSON lines by default (for log
//! shippers), human-readable with `PEYK_LOG_FORMAT=text`; levels from `RUST_LOG`.

use tracing_subscriber::EnvFilter;

pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("PEYK_LOG_FORMAT").as_deref() == Ok("text") {
        builder.init();
    } else {
        builder.json().with_current_span(true).with_span_list(false).init();
    }
}
