//! The GPUs whisper.cpp can use, as ggml's device registry lists them.
//!
//! A worker built with `cuda` may start on a host without a GPU (or whose
//! driver is too old for the CUDA it was built with): whisper.cpp then runs
//! on the CPU without a word. The worker asks ggml first, so that its logs,
//! results and metrics say `cpu` and it shares the CPU's cores as a CPU
//! worker does, instead of claiming `cuda:0`.

use std::ffi::CStr;

use whisper_rs_sys as sys;

/// One GPU: ggml's device name (`CUDA0`), its description (the card's name)
/// and its memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    pub name: String,
    pub description: String,
    pub total_bytes: usize,
    pub free_bytes: usize,
}

/// Every GPU ggml's compiled-in backends find (none in a CPU-only build).
pub fn devices() -> Vec<Gpu> {
    // SAFETY: ggml's registry is built once, on first use, and only read
    // afterwards; device handles live as long as the process, and their
    // names are NUL-terminated strings that ggml owns.
    unsafe {
        (0..sys::ggml_backend_dev_count())
            .map(|index| sys::ggml_backend_dev_get(index))
            .filter(|&device| {
                let kind = sys::ggml_backend_dev_type(device);
                kind == sys::ggml_backend_dev_type_GGML_BACKEND_DEVICE_TYPE_GPU
                    || kind == sys::ggml_backend_dev_type_GGML_BACKEND_DEVICE_TYPE_IGPU
            })
            .map(|device| {
                let (mut free_bytes, mut total_bytes) = (0, 0);
                sys::ggml_backend_dev_memory(device, &mut free_bytes, &mut total_bytes);
                Gpu {
                    name: text(sys::ggml_backend_dev_name(device)),
                    description: text(sys::ggml_backend_dev_description(device)),
                    total_bytes,
                    free_bytes,
                }
            })
            .collect()
    }
}

/// # Safety
/// `pointer` is null or a NUL-terminated string.
unsafe fn text(pointer: *const std::ffi::c_char) -> String {
    if pointer.is_null() {
        return String::new();
    }
    // SAFETY: as the caller promises.
    unsafe { CStr::from_ptr(pointer) }.to_string_lossy().into_owned()
}

/// Where the models run: the configured GPU if the build has CUDA, the
/// setting allows it and the device exists; otherwise the CPU (warning when
/// a GPU was expected and is not there).
pub fn choose(built_with_cuda: bool, use_gpu: bool, device_index: i32, gpus: &[Gpu]) -> anyhow::Result<Option<&Gpu>> {
    if !built_with_cuda || !use_gpu {
        return Ok(None);
    }
    if gpus.is_empty() {
        tracing::warn!(
            "built with CUDA, but ggml finds no GPU (none here, or its driver is older than the CUDA build): transcribing on the CPU"
        );
        return Ok(None);
    }
    let gpu = usize::try_from(device_index).ok().and_then(|index| gpus.get(index)).ok_or_else(|| {
        anyhow::anyhow!(
            "PEYK_WHISPER_GPU_DEVICE={device_index}, but this host has {} GPU(s): {}",
            gpus.len(),
            gpus.iter().map(|g| format!("{} ({})", g.name, g.description)).collect::<Vec<_>>().join(", ")
        )
    })?;
    Ok(Some(gpu))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(name: &str) -> Gpu {
        Gpu { name: name.into(), description: "NVIDIA H200".into(), total_bytes: 1 << 37, free_bytes: 1 << 36 }
    }

    #[test]
    fn a_cpu_build_lists_no_gpu_and_runs_on_the_cpu() {
        assert!(cfg!(feature = "cuda") || devices().is_empty());
        assert_eq!(choose(false, true, 0, &[card("CUDA0")]).unwrap(), None);
    }

    #[test]
    fn a_cuda_build_without_a_gpu_runs_on_the_cpu() {
        assert_eq!(choose(true, true, 0, &[]).unwrap(), None);
    }

    #[test]
    fn the_setting_can_keep_a_cuda_build_on_the_cpu() {
        assert_eq!(choose(true, false, 0, &[card("CUDA0")]).unwrap(), None);
    }

    #[test]
    fn the_configured_device_is_chosen_and_a_missing_one_refused() {
        let gpus = [card("CUDA0"), card("CUDA1")];
        assert_eq!(choose(true, true, 1, &gpus).unwrap().unwrap().name, "CUDA1");
        let refused = choose(true, true, 2, &gpus).unwrap_err().to_string();
        assert!(refused.contains("PEYK_WHISPER_GPU_DEVICE=2") && refused.contains("2 GPU(s)"), "{refused}");
        assert!(choose(true, true, -1, &gpus).is_err());
    }
}
