//! The end-to-end tests, one module per area, in one test binary: linked
//! once instead of once per file (on a 2-core machine of this kind that
//! took the tests' build from 143 s to 24 s). Every test's name starts with
//! `e2e::AREA::`: `infrastructure/dev/test.sh` runs the workspace's other
//! tests with `--skip e2e::`, then the areas one after another, each in a
//! process of its own (`cargo test --test e2e -- e2e::AREA::`), so that
//! tests of different areas never share the cores, as when each file was
//! its own binary.

// The areas' files sit beside this one.
#[path = "."]
mod e2e {
    mod api;
    mod console;
    mod deployment;
    mod email;
    mod fairness;
    mod files;
    mod keys;
    mod lifecycle;
    mod limits;
    mod medical;
    mod operations;
    mod payments;
    mod pipelines;
    mod python;
    mod resilience;
    mod retention;
    mod runner;
    mod schedules;
    mod secrets;
    mod sms;
    mod tasks;
    mod transcription;
    mod webhook;
    mod webhook_endpoints;
}
