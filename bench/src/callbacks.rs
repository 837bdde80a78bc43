//! `peyk-bench-callbacks URL RATE SECONDS`: sends Zarinpal callbacks
//! (`GET URL?Authority=A…&Status=OK`, authority `i` = `A` + `i` padded to 35
//! digits, i = 1…RATE×SECONDS) at a constant RATE per second — open loop, as
//! payers' browsers arrive: a slow answer does not slow the next request —
//! and reports latency percentiles from the moment each request is sent,
//! and (including the client's own timer lateness, ≈1 ms) from the moment
//! it was due.

use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or_else(|| anyhow::anyhow!("usage: peyk-bench-callbacks URL RATE SECONDS"))?;
    let rate: u64 = args.next().unwrap_or_else(|| "1000".into()).parse()?;
    let seconds: u64 = args.next().unwrap_or_else(|| "20".into()).parse()?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(512).build()?;
    let total = rate * seconds;
    let start = Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 1..=total {
        let scheduled = start + Duration::from_nanos(i * 1_000_000_000 / rate);
        let (client, url) = (client.clone(), format!("{url}?Authority=A{i:035}&Status=OK"));
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(scheduled.into()).await;
            let sent = Instant::now();
            let status = client.get(url).send().await.map(|r| r.status().as_u16()).unwrap_or(0);
            (sent.elapsed(), scheduled.elapsed(), status)
        }));
    }
    let (mut from_sent, mut from_due) = (Vec::with_capacity(tasks.len()), Vec::with_capacity(tasks.len()));
    let mut not_ok = 0;
    for task in tasks {
        let (sent, due, status) = task.await?;
        if status != 200 {
            not_ok += 1;
        }
        from_sent.push(sent);
        from_due.push(due);
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!("callbacks: {total} at {rate}/s in {elapsed:.1} s; not 200: {not_ok}");
    for (name, mut latencies) in [("from sent", from_sent), ("from due ", from_due)] {
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)].as_secs_f64() * 1000.0;
        println!(
            "latency {name}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            at(0.5),
            at(0.9),
            at(0.99),
            at(0.999),
            at(1.0)
        );
    }
    Ok(())
}
