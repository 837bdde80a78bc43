//! The Python client (`clients/python`) against a real Peyk: its own tests
//! (pytest) run with an API and a worker started here, and serve their
//! `@task` functions from real FastAPI and Django servers.

use std::time::Duration;

use peyk_tests::TestEnv;

#[tokio::test]
async fn the_python_clients_tests_pass_against_a_real_peyk() {
    let env = TestEnv::new("python").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let _worker = env.start_worker().await;
    let python = std::env::var("PEYK_TEST_PYTHON").expect("PEYK_TEST_PYTHON (set by infrastructure/dev/test.sh)");
    let tests = concat!(env!("CARGO_MANIFEST_DIR"), "/../clients/python/tests");
    let run = tokio::process::Command::new(python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", tests])
        .env("PEYK_URL", &api.url)
        .env("PEYK_API_KEY", &key)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), run).await.expect("pytest within 5 minutes").expect("run pytest");
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    println!("{printed}");
    assert!(output.status.success(), "the Python client's tests failed:\n{printed}");
    assert!(printed.contains(" passed"), "pytest ran no test:\n{printed}");
}
