//! The vector extensions whisper.cpp was compiled for, against the CPU's.
//!
//! ggml picks its kernels at compile time: a native build (`GGML_NATIVE`,
//! the default) uses everything the building CPU has; a portable build uses
//! what its flags name (README "Portable builds"). Run on a CPU without one
//! of them, it dies of SIGILL in the middle of the first job; built without
//! one the CPU has, it runs several times slower than it could. So a worker
//! checks at start-up: the first is an error, the second a warning.

use std::collections::HashSet;

/// ggml's name for an extension (in `whisper_print_system_info`) and the
/// flag `/proc/cpuinfo` shows for it.
const EXTENSIONS: &[(&str, &str)] = &[
    ("SSE3", "pni"),
    ("SSSE3", "ssse3"),
    ("AVX", "avx"),
    ("AVX2", "avx2"),
    ("F16C", "f16c"),
    ("FMA", "fma"),
    ("BMI2", "bmi2"),
    ("AVX_VNNI", "avx_vnni"),
    ("AVX512", "avx512f"),
    ("AVX512_VBMI", "avx512vbmi"),
    ("AVX512_VNNI", "avx512_vnni"),
    ("AVX512_BF16", "avx512_bf16"),
];

/// What the check found.
#[derive(Debug, PartialEq, Eq)]
pub struct Extensions {
    /// Compiled in, but this CPU lacks them: the worker must not run.
    pub missing: Vec<&'static str>,
    /// This CPU has them, the build does not use them: slower than native.
    pub unused: Vec<&'static str>,
}

/// Compares whisper.cpp's system info line with the CPU's flags.
pub fn compare(system_info: &str, cpu_flags: &HashSet<String>) -> Extensions {
    let compiled: HashSet<&str> = system_info
        .split('|')
        .filter_map(|item| item.split_once('='))
        .filter(|(_, value)| value.trim() == "1")
        .map(|(name, _)| name.rsplit(':').next().unwrap_or(name).trim())
        .collect();
    let mut found = Extensions { missing: Vec::new(), unused: Vec::new() };
    for &(name, flag) in EXTENSIONS {
        match (compiled.contains(name), cpu_flags.contains(flag)) {
            (true, false) => found.missing.push(name),
            (false, true) => found.unused.push(name),
            _ => {}
        }
    }
    found
}

/// The flags of the first CPU in `/proc/cpuinfo` (empty where there is none).
pub fn cpu_flags() -> HashSet<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    info.lines()
        .find_map(|line| line.strip_prefix("flags").and_then(|rest| rest.split_once(':')).map(|(_, flags)| flags.to_string()))
        .map(|flags| flags.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Logs what whisper.cpp was built for; fails when this CPU cannot run it.
pub fn check() -> anyhow::Result<()> {
    let system_info = whisper_rs::print_system_info();
    tracing::info!(system_info = %system_info.trim(), "whisper.cpp build");
    let flags = cpu_flags();
    if flags.is_empty() {
        return Ok(()); // not Linux on x86: nothing to compare with
    }
    let found = compare(system_info, &flags);
    anyhow::ensure!(
        found.missing.is_empty(),
        "this worker's whisper.cpp was built for {} which this CPU lacks (it would stop with SIGILL); \
         use a build for this CPU (README \"Portable builds\")",
        found.missing.join(", ")
    );
    if !found.unused.is_empty() {
        tracing::warn!(
            unused = %found.unused.join(", "),
            "whisper.cpp was built without vector extensions this CPU has: transcription is slower than a native build (README \"Portable builds\")"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "WHISPER : COREML = 0 | OPENVINO = 0 | CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | OPENMP = 1 | REPACK = 1 | ";

    fn flags(list: &str) -> HashSet<String> {
        list.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn extensions_are_compared_both_ways() {
        let haswell = flags("fpu pni ssse3 avx avx2 f16c fma bmi2");
        assert_eq!(compare(INFO, &haswell), Extensions { missing: vec![], unused: vec![] });
        let zen4 = flags("pni ssse3 avx avx2 f16c fma bmi2 avx512f avx512_vnni");
        assert_eq!(compare(INFO, &zen4), Extensions { missing: vec![], unused: vec!["AVX512", "AVX512_VNNI"] });
        let sandy_bridge = flags("pni ssse3 avx");
        assert_eq!(compare(INFO, &sandy_bridge), Extensions { missing: vec!["AVX2", "F16C", "FMA", "BMI2"], unused: vec![] });
    }

    #[test]
    fn the_linked_whisper_cpp_runs_on_this_cpu() {
        let found = compare(whisper_rs::print_system_info(), &cpu_flags());
        assert!(found.missing.is_empty(), "{found:?}: {}", whisper_rs::print_system_info());
    }
}
