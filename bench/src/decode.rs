//! `peyk-bench-decode FILE [RUNS]`: times Peyk's audio path (demux, decode,
//! down-mix, resample to 16 kHz mono) on one file, as a transcription job
//! runs it, and prints the best and median of RUNS (default 5).

use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or_else(|| anyhow::anyhow!("usage: peyk-bench-decode FILE [RUNS]"))?;
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(5).max(1);
    let data = std::fs::read(&path)?;
    let extension = std::path::Path::new(&path).extension().and_then(|e| e.to_str()).map(str::to_lowercase);
    let mut times = Vec::new();
    let mut audio = None;
    for _ in 0..runs {
        let started = Instant::now();
        audio = Some(peyk_speech::decode::decode(&data, extension.as_deref())?);
        times.push(started.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let audio = audio.expect("at least one run");
    println!(
        "{path}: {:.1} s of {} audio ({} Hz, {} ch) -> {} samples at 16 kHz; decode+resample best {:.0} ms, median {:.0} ms ({runs} runs)",
        audio.duration_seconds(),
        audio.codec,
        audio.source_sample_rate,
        audio.source_channels,
        audio.samples.len(),
        times[0] * 1000.0,
        times[times.len() / 2] * 1000.0,
    );
    Ok(())
}
