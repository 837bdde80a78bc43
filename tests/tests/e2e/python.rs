//! The Python client (`clients/python`) against a real Peyk: its own tests
//! (pytest) run with an API and workers started here — the LLM and SMTP of
//! the workers are this harness's local servers, transcription runs the
//! test's Whisper model — and serve their `@task` functions from real
//! FastAPI and Django servers.

use std::time::Duration;

use peyk_tests::openai::OpenAi;
use peyk_tests::smtp::SmtpSink;
use peyk_tests::speech::fixture_path;
use peyk_tests::TestEnv;

#[tokio::test]
async fn the_python_clients_tests_pass_against_a_real_peyk() {
    let env = TestEnv::new("python").await;
    let key = env.create_key("clinic").await;
    let read_only = env.create_key_with(&["--tenant", "clinic", "--scope", "jobs:read"]).await;
    let api = env.start_api().await;
    let openai = OpenAi::start().await;
    let smtp = SmtpSink::start("python").await;
    let smtp_url = smtp.url();
    let llm_env = openai.env();
    let mut worker_env = peyk_tests::env_pairs(&llm_env);
    worker_env.extend([("PEYK_SMTP_URL", smtp_url.as_str()), ("PEYK_EMAIL_FROM", "Clinic <noreply@clinic.example>")]);
    let _worker = env.start_worker_with(&worker_env).await;
    let _speech = env.start_speech_worker(&[]).await;
    let python = std::env::var("PEYK_TEST_PYTHON").expect("PEYK_TEST_PYTHON (set by infrastructure/dev/test.sh)");
    let tests = concat!(env!("CARGO_MANIFEST_DIR"), "/../clients/python/tests");
    let run = tokio::process::Command::new(python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", tests])
        .env("PEYK_URL", &api.url)
        .env("PEYK_API_KEY", &key)
        .env("PEYK_TEST_READ_ONLY_KEY", &read_only)
        .env("PEYK_TEST_AUDIO", fixture_path("jfk.wav"))
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), run).await.expect("pytest within 5 minutes").expect("run pytest");
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    println!("{printed}");
    assert!(output.status.success(), "the Python client's tests failed:\n{printed}");
    assert!(printed.contains(" passed"), "pytest ran no test:\n{printed}");
    assert_eq!(smtp.received().len(), 1, "the email helper's message reached the SMTP server");
}
