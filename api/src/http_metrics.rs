//! The API's own metrics: requests served and the time to answer them, by
//! route (its template, so ids do not explode the series) and method.
//! Registered in peyk-jobs' registry, so `/metrics` serves them with the rest.

use std::sync::LazyLock;

use peyk_jobs::metrics::register;
use prometheus::{exponential_buckets, HistogramOpts, HistogramVec, IntCounterVec, Opts};

pub static HTTP_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(IntCounterVec::new(Opts::new("peyk_http_requests_total", "HTTP requests served"), &["route", "method", "status"]).unwrap())
});

pub static HTTP_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new("peyk_http_request_duration_seconds", "Time to answer an HTTP request")
                .buckets(exponential_buckets(0.0005, 2.0, 15).unwrap()),
            &["route", "method"],
        )
        .unwrap(),
    )
});
