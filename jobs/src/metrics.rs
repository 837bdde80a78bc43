//! Prometheus metrics of the job types and their providers, in the
//! process's one registry. The queue's and the runner's own (jobs enqueued,
//! finished, retried; queue depths; pool and Redis state) are
//! `peyk_queue::metrics`, re-exported here so that a process reads every
//! metric of Peyk's from one module.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{exponential_buckets, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};

pub use peyk_queue::metrics::*;

pub static PROVIDER_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new("peyk_provider_requests_total", "Calls to outside providers (webhook endpoints, gateways, SMTP, LLMs)"),
            &["provider", "outcome"],
        )
        .unwrap(),
    )
});

pub static PROVIDER_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new("peyk_provider_request_duration_seconds", "Time an outside provider took to answer")
                .buckets(exponential_buckets(0.001, 2.5, 14).unwrap()),
            &["provider"],
        )
        .unwrap(),
    )
});

/// Outcome of one call to a provider: `success`, `client_error`,
/// `server_error`, `timeout`, `connection_error`, `refused` (e.g. a blocked
/// address: never sent, so `took` is `None` and no latency is recorded).
pub fn observe_provider(provider: &str, outcome: &str, took: Option<Duration>) {
    PROVIDER_REQUESTS.with_label_values(&[provider, outcome]).inc();
    if let Some(took) = took {
        PROVIDER_DURATION.with_label_values(&[provider]).observe(took.as_secs_f64());
    }
}

pub static TRANSCRIBED_AUDIO: LazyLock<prometheus::CounterVec> = LazyLock::new(|| {
    register(
        prometheus::CounterVec::new(
            Opts::new("peyk_transcription_audio_seconds_total", "Seconds of audio transcribed, by model and device"),
            &["model", "device"],
        )
        .unwrap(),
    )
});

/// Time spent finding who spoke when, per transcription with `speakers`.
pub static SPEAKER_LABELLING_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new("peyk_speaker_labelling_seconds", "Time spent labelling speakers (diarization) per transcription")
                .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
        )
        .unwrap(),
    )
});

pub static TRANSCRIPTION_RTF: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "peyk_transcription_real_time_factor",
                "Processing time over audio duration of each transcription (below 1 is faster than real time)",
            )
            .buckets(vec![0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0]),
            &["model", "device"],
        )
        .unwrap(),
    )
});

pub static SPEECH_MODELS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(Opts::new("peyk_speech_models_loaded", "Whisper models this worker has loaded"), &["model", "device"]).unwrap(),
    )
});

/// Creates every series that should exist from the start at zero, so that
/// dashboards and alerts see them before the first event.
/// Payment outcomes as recorded (once per payment), by gateway and status.
pub static PAYMENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(Opts::new("peyk_payments_total", "Payment outcomes recorded, once per payment"), &["gateway", "status"])
            .unwrap(),
    )
});

/// Gateway callbacks the API answered, by what became of them.
pub static PAYMENT_CALLBACKS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "peyk_payment_callbacks_total",
                "Gateway callbacks received: verifying, received, duplicate, unknown_payment, rejected, rate_limited",
            ),
            &["gateway", "result"],
        )
        .unwrap(),
    )
});

pub const PAYMENT_GATEWAYS: [&str; 4] = ["zarinpal", "idpay", "bitpay", "stripe"];
pub const PAYMENT_STATUSES: [&str; 5] = ["verified", "already_verified", "amount_mismatch", "failed", "needs_review"];
pub const CALLBACK_RESULTS: [&str; 6] = ["verifying", "received", "duplicate", "unknown_payment", "rejected", "rate_limited"];

/// Payments recorded as failed that a gateway later said were paid.
pub static PAYMENT_REVERSALS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "peyk_payment_reversals_total",
                "Payments recorded as failed (unpaid) that the gateway later said were paid; now paid",
            ),
            &["gateway"],
        )
        .unwrap(),
    )
});

/// Creates every series at zero: the queue's for each job type, and the
/// providers' and payments'.
pub fn init_series(job_types: &[&str]) {
    peyk_queue::metrics::init_job_series(job_types);
    for gateway in PAYMENT_GATEWAYS {
        for status in PAYMENT_STATUSES {
            PAYMENTS.with_label_values(&[gateway, status]);
        }
        for result in CALLBACK_RESULTS {
            PAYMENT_CALLBACKS.with_label_values(&[gateway, result]);
        }
        PAYMENT_REVERSALS.with_label_values(&[gateway]);
    }
    for provider in ["webhook", "smtp"].into_iter().chain(PAYMENT_GATEWAYS) {
        for outcome in ["success", "client_error", "server_error", "timeout", "connection_error", "refused"] {
            PROVIDER_REQUESTS.with_label_values(&[provider, outcome]);
        }
        PROVIDER_DURATION.with_label_values(&[provider]);
    }
}
