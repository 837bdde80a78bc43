//! whisper.cpp's and ggml's log lines, into `tracing` (as whisper-rs's own
//! hook routes them), less the one line that Peyk's language detection
//! provokes on purpose: the primed pass that stops before its encoder
//! (`engine::SpeechModels::language_for`) makes whisper.cpp log
//! "encoder_begin_callback returned false - aborting" as an error, which
//! would put a false error in the log of every detection.

use std::ffi::{c_char, c_void, CStr};
use std::sync::Once;

// ggml's `enum ggml_log_level` (ggml.h): 1 debug, 2 info, 3 warn, 4 error, 5 cont.
const DEBUG: u32 = 1;
const WARN: u32 = 3;
const ERROR: u32 = 4;

/// whisper.cpp's line for a pass stopped before its encoder.
const STOPPED_BEFORE_ENCODER: &str = "encoder_begin_callback returned false";

pub fn install() {
    static INSTALLED: Once = Once::new();
    // SAFETY: `forward` only reads the NUL-terminated text it is given.
    INSTALLED.call_once(|| unsafe { whisper_rs::set_log_callback(Some(forward), std::ptr::null_mut()) });
}

unsafe extern "C" fn forward(level: u32, text: *const c_char, _: *mut c_void) {
    if text.is_null() {
        return;
    }
    // SAFETY: whisper.cpp and ggml pass NUL-terminated strings.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let text = text.trim();
    if text.is_empty() || text.contains(STOPPED_BEFORE_ENCODER) {
        return;
    }
    match level {
        ERROR => tracing::error!(target: "whisper_cpp", "{text}"),
        WARN => tracing::warn!(target: "whisper_cpp", "{text}"),
        DEBUG => tracing::debug!(target: "whisper_cpp", "{text}"),
        _ => tracing::info!(target: "whisper_cpp", "{text}"),
    }
}
