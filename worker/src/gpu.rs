//! GPU utilisation, memory and temperature of each NVIDIA device, read
//! through NVML when Prometheus scrapes the worker. NVML is loaded at run
//! time (libnvidia-ml ships with the driver), so the same binary runs on CPU
//! hosts: there NVML does not load and the `peyk_gpu_*` series never exist
//! (absent, not zero, so that a CPU host does not look like an idle GPU).

use std::sync::LazyLock;

use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::Nvml;
use peyk_jobs::metrics::register;
use prometheus::{GaugeVec, Opts};

static NVML: LazyLock<Option<Nvml>> = LazyLock::new(|| match Nvml::init() {
    Ok(nvml) => {
        tracing::info!(devices = nvml.device_count().unwrap_or(0), "NVML loaded: exporting GPU metrics");
        Some(nvml)
    }
    Err(e) => {
        tracing::debug!(error = %e, "no NVML (no NVIDIA driver): no GPU metrics");
        None
    }
});

fn gauge(name: &str, help: &str) -> GaugeVec {
    register(GaugeVec::new(Opts::new(name, help), &["gpu", "name"]).expect("valid metric"))
}

struct GpuGauges {
    utilization: GaugeVec,
    memory_used: GaugeVec,
    memory_total: GaugeVec,
    temperature: GaugeVec,
}

static GAUGES: LazyLock<GpuGauges> = LazyLock::new(|| GpuGauges {
    utilization: gauge("peyk_gpu_utilization_ratio", "Share of the last sample period in which a kernel ran on the GPU (0-1)"),
    memory_used: gauge("peyk_gpu_memory_used_bytes", "GPU memory allocated"),
    memory_total: gauge("peyk_gpu_memory_total_bytes", "GPU memory installed"),
    temperature: gauge("peyk_gpu_temperature_celsius", "GPU die temperature"),
});

/// Updates the GPU gauges; does nothing (and creates nothing) without NVML.
pub fn refresh() {
    let Some(nvml) = NVML.as_ref() else { return };
    let count = nvml.device_count().unwrap_or(0);
    for index in 0..count {
        let Ok(device) = nvml.device_by_index(index) else { continue };
        let gpu = index.to_string();
        let name = device.name().unwrap_or_default();
        let labels = [gpu.as_str(), name.as_str()];
        if let Ok(rates) = device.utilization_rates() {
            GAUGES.utilization.with_label_values(&labels).set(f64::from(rates.gpu) / 100.0);
        }
        if let Ok(memory) = device.memory_info() {
            GAUGES.memory_used.with_label_values(&labels).set(memory.used as f64);
            GAUGES.memory_total.with_label_values(&labels).set(memory.total as f64);
        }
        if let Ok(celsius) = device.temperature(TemperatureSensor::Gpu) {
            GAUGES.temperature.with_label_values(&labels).set(f64::from(celsius));
        }
    }
}
