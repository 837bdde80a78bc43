//! How long whisper.cpp's OpenMP threads spin before they sleep.
//!
//! whisper.cpp's threads meet at a barrier after every step of the model,
//! hundreds of times a second. libgomp (GCC's OpenMP) lets a waiting thread
//! spin 300,000 times before it sleeps; while it spins it holds a core that
//! another thread needs — the other half of its own team when something else
//! runs on the host (the API, PostgreSQL, Redis, a second worker), or that
//! something else. Measured with two 2-thread transcriptions on 2 cores
//! (README, "Transcription and the cores"): 5.06 s and 9.7 CPU-seconds with
//! the default spin, 2.82 s and 5.3 CPU-seconds with 5,000; alone on idle
//! cores the two settings are equally fast (1.47–1.52 s).
//!
//! libgomp reads its settings once, when it is loaded, before `main` runs;
//! so a worker started without them runs itself again with them set.
//! `GOMP_SPINCOUNT` or `OMP_WAIT_POLICY` set by the operator is kept as is.

use std::os::unix::process::CommandExt;

const SPIN_COUNT: &str = "5000";
/// Set on the second start, so that a failing `exec` cannot loop.
const MARK: &str = "PEYK_OPENMP_SET";

/// Runs the worker again with a short OpenMP spin if it was not set; returns
/// (and the worker carries on as it is) when nothing needs doing or the
/// re-run is not possible.
pub fn ensure_short_spin() {
    let set = |name: &str| std::env::var_os(name).is_some();
    if set("GOMP_SPINCOUNT") || set("OMP_WAIT_POLICY") || set(MARK) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let error = std::process::Command::new(exe).args(std::env::args_os().skip(1)).env("GOMP_SPINCOUNT", SPIN_COUNT).env(MARK, "1").exec();
    // Only reached when exec failed: carry on with libgomp's default.
    eprintln!("peyk-worker: could not restart with GOMP_SPINCOUNT={SPIN_COUNT} ({error}); whisper threads spin longer");
}
