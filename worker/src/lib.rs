//! The worker's generic part: the runner that takes one queue entry to a
//! recorded outcome, and the apalis consumers that feed it. The binary
//! (`main.rs`) wires them to the production registry; tests drive the
//! runner with registries of toy jobs (`tests/tests/runner.rs`).

pub mod consumers;
pub mod runner;
