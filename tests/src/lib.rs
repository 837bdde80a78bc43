//! Test harness: real PostgreSQL and Redis (started by
//! `infrastructure/dev/test.sh`), the real `peyk-api` and `peyk-worker`
//! binaries as child processes, and a local HTTP sink that records what
//! webhook deliveries send and answers as each test scripts it.
//!
//! Every test gets its own database (a copy of the migrated template) and
//! its own Redis key prefix, so tests run in parallel without seeing each
//! other.

/// The key the tests' processes seal secrets with (32 bytes of 0x11).
pub const TEST_SECRETS_KEY: &str = "ERERERERERERERERERERERERERERERERERERERERERE=";

pub mod browser;
pub mod gateways;
pub mod kavenegar;
pub mod openai;
pub mod signatures;
pub mod sink;
pub mod smtp;
pub mod speech;
pub mod sse;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use tokio::process::{Child, Command};

pub use sink::{Received, Reply, Sink};
pub use smtp::SmtpSink;

/// A loopback port nothing listens on, for a server a test starts.
///
/// Not one the kernel picks (`bind(0)`): those come from the ephemeral range,
/// which every outgoing connection of every process on the machine also draws
/// from, so between this call and the server's own bind, a client socket (of
/// PostgreSQL, Redis, another test's HTTP client) could take it. On a slower
/// machine, where that window is longer, a test's API then failed to bind and
/// the test talked to another test's API. Ports below the ephemeral range are
/// never taken that way; each is handed out once per test process.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let (low, high) = below_ephemeral_range();
    let span = high - low;
    // Test binaries run one after another; spreading them by pid keeps a
    // lingering process of an earlier one (TIME_WAIT, a slow exit) out of the way.
    let start = std::process::id() * 97 % span;
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = (low + (start + offset) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `[low, high)`: up to 12,000 ports just below the kernel's ephemeral range.
fn below_ephemeral_range() -> (u32, u32) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse::<u32>().ok()))
        .unwrap_or(32768);
    let high = ephemeral_low.max(12_000);
    (high.saturating_sub(12_000).max(10_000), high)
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the tests with infrastructure/dev/test.sh"))
}

pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var("PEYK_BIN_DIR").map(PathBuf::from).unwrap_or_else(|_| {
        // target/debug/deps/<test binary> → target/debug
        std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf()
    });
    let path = dir.join(name);
    assert!(path.exists(), "{} not built: run `cargo build --workspace --bins` first", path.display());
    path
}

fn log_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-logs").join(format!("{name}.log"))
}

fn log_file(name: &str) -> std::fs::File {
    let path = log_path(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::File::create(path).unwrap()
}

/// One test's world: its database, its Redis prefix, its processes.
pub struct TestEnv {
    pub name: String,
    pub database_url: String,
    pub redis_url: String,
    pub prefix: String,
    pub http: reqwest::Client,
}

impl TestEnv {
    pub async fn new(name: &str) -> Self {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let suffix = &id[id.len() - 10..];
        let db_name = format!("t_{}_{suffix}", name.replace('-', "_"));
        let admin_url = format!("{}/postgres", env("PEYK_TEST_PG_URL"));
        let template = env("PEYK_TEST_PG_TEMPLATE");
        let mut admin = AsyncPgConnection::establish(&admin_url).await.expect("connect to the test PostgreSQL");
        // Copies of one template can collide ("being accessed by other users"): retry.
        let mut tries = 0;
        loop {
            match diesel::sql_query(format!("CREATE DATABASE {db_name} TEMPLATE {template}")).execute(&mut admin).await {
                Ok(_) => break,
                Err(_) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100 + tries * 20)).await;
                }
                Err(e) => panic!("create test database: {e}"),
            }
        }
        Self {
            name: format!("{name}-{suffix}"),
            database_url: format!("{}/{db_name}", env("PEYK_TEST_PG_URL")),
            redis_url: env("PEYK_TEST_REDIS_URL"),
            prefix: format!("test-{suffix}"),
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        }
    }

    pub async fn db(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.database_url).await.expect("connect to the test database")
    }

    /// Runs one SQL query returning a single bigint (e.g. a count).
    pub async fn sql_count(&self, sql: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.db().await;
        let row: Row = diesel::sql_query(sql).get_result(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        row.n
    }

    /// The test database's rows as `pg_dump --data-only` writes them: what a
    /// backup would hold.
    pub async fn pg_dump(&self) -> String {
        let bin = std::env::var("PEYK_TEST_PG_BIN").expect("PEYK_TEST_PG_BIN (set by infrastructure/dev/test.sh)");
        let output = Command::new(format!("{bin}/pg_dump")).arg("--data-only").arg(&self.database_url).output().await.unwrap();
        assert!(output.status.success(), "pg_dump: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }

    pub async fn sql_exec(&self, sql: &str) {
        let mut conn = self.db().await;
        diesel::sql_query(sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The test's own file store folder, shared by its API and workers.
    pub fn files_dir(&self) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-files").join(&self.name)
    }

    fn base_env(&self, command: &mut Command) {
        command
            // Models only where a test asks for them (loading costs time and memory).
            .env_remove("PEYK_MODELS_DIR")
            .env_remove("PEYK_WHISPER_MODELS")
            // The worker's own OpenMP setting is what the tests check.
            .env_remove("GOMP_SPINCOUNT")
            .env_remove("OMP_WAIT_POLICY")
            .env("PEYK_STORAGE_DIR", self.files_dir())
            .env("DATABASE_URL", &self.database_url)
            .env("REDIS_URL", &self.redis_url)
            .env("PEYK_REDIS_PREFIX", &self.prefix)
            .env("PEYK_LOG_FORMAT", "text")
            // Secrets are sealed in every test, as in production.
            .env("PEYK_SECRETS_KEY", TEST_SECRETS_KEY)
            .env_remove("PEYK_SECRETS_KEY_FILE")
            .env_remove("PEYK_SECRETS_OLD_KEYS")
            .env_remove("PEYK_ENVIRONMENT")
            .env("RUST_LOG", std::env::var("PEYK_TEST_LOG").unwrap_or_else(|_| "info".into()));
    }

    /// `peyk-api create-key`: the key printed on stdout.
    pub async fn create_key(&self, tenant: &str) -> String {
        self.create_key_with(&["--tenant", tenant]).await
    }

    /// An admin key (`create-key --admin`), of tenant `operators`.
    pub async fn create_admin_key(&self) -> String {
        self.create_key_with(&["--tenant", "operators", "--admin"]).await
    }

    /// Runs `peyk-api ARGS` (an operator's command) and returns its stderr.
    pub async fn cli(&self, args: &[&str]) -> String {
        self.cli_with(args, &[]).await
    }

    /// `cli` with settings of its own.
    pub async fn cli_with(&self, args: &[&str], extra: &[(&str, &str)]) -> String {
        let mut command = Command::new(bin("peyk-api"));
        self.base_env(&mut command);
        let output = command.args(args).envs(extra.iter().copied()).output().await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(output.status.success(), "peyk-api {args:?} failed: {stderr}");
        stderr
    }

    /// Runs `peyk-api ARGS` and returns its stdout.
    pub async fn cli_stdout(&self, args: &[&str]) -> String {
        let mut command = Command::new(bin("peyk-api"));
        self.base_env(&mut command);
        let output = command.args(args).output().await.unwrap();
        assert!(output.status.success(), "peyk-api {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).to_string()
    }

    /// `peyk-api create-key ARGS`: the key printed on stdout.
    pub async fn create_key_with(&self, args: &[&str]) -> String {
        let mut command = Command::new(bin("peyk-api"));
        self.base_env(&mut command);
        let output = command.arg("create-key").args(args).output().await.unwrap();
        assert!(output.status.success(), "create-key failed: {}", String::from_utf8_lossy(&output.stderr));
        let key = String::from_utf8(output.stdout).unwrap().trim().to_string();
        assert!(key.starts_with("peyk_"), "unexpected key {key:?}");
        key
    }

    pub async fn start_api(&self) -> Api {
        self.start_api_with(&[]).await
    }

    pub async fn start_api_with(&self, extra: &[(&str, &str)]) -> Api {
        let port = free_port();
        let mut command = Command::new(bin("peyk-api"));
        self.base_env(&mut command);
        command.env("PEYK_API_ADDR", format!("127.0.0.1:{port}")).envs(extra.iter().copied());
        let log_name = format!("{}-api-{port}", self.name);
        let mut child = spawn(command, &log_name);
        let url = format!("http://127.0.0.1:{port}");
        wait_until_up(&self.http, &mut child, &format!("{url}/healthz"), &log_name).await;
        Api { url, child, http: self.http.clone() }
    }

    /// A worker serving only the transcription queue, with the test models.
    ///
    /// Speech workers run one at a time in a test process, each with as many
    /// whisper threads as this process has cores (1 under `taskset -c 0`):
    /// whisper.cpp's threads spin while they wait for each other, so two
    /// tests' transcriptions on the same cores slow each other many times
    /// over. The test that gets the slot keeps it until its worker is dropped;
    /// the others wait for it before their own clocks start.
    pub async fn start_speech_worker(&self, extra: &[(&str, &str)]) -> Worker {
        static SPEECH_SLOT: std::sync::LazyLock<std::sync::Arc<tokio::sync::Semaphore>> =
            std::sync::LazyLock::new(|| std::sync::Arc::new(tokio::sync::Semaphore::new(1)));
        let slot = SPEECH_SLOT.clone().acquire_owned().await.expect("never closed");
        // tiny.en, base and the VAD model by name: the folder also holds the
        // quantized variants, which only the quantization test loads.
        let dir = speech::models_dir();
        let models = format!("tiny.en={dir}/ggml-tiny.en.bin,base={dir}/ggml-base.bin");
        let vad = format!("{dir}/{}", speech::VAD_MODEL);
        let speaker_model = format!("{dir}/{}", speech::SPEAKER_MODEL);
        let onnxruntime = format!("{dir}/{}", speech::ONNXRUNTIME_LIB);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).to_string();
        let mut all = vec![
            ("PEYK_QUEUES", "transcription"),
            ("PEYK_WHISPER_MODELS", models.as_str()),
            ("PEYK_WHISPER_VAD_MODEL", vad.as_str()),
            ("PEYK_SPEAKER_MODEL", speaker_model.as_str()),
            ("PEYK_ONNXRUNTIME_LIB", onnxruntime.as_str()),
            ("PEYK_WHISPER_THREADS", threads.as_str()),
        ];
        all.extend_from_slice(extra);
        let mut worker = self.start_worker_with(&all).await;
        worker.cpu_slot = Some(slot);
        worker
    }

    pub async fn start_worker(&self) -> Worker {
        self.start_worker_with(&[]).await
    }

    /// A worker that may deliver to loopback and retries quickly.
    pub async fn start_worker_with(&self, extra: &[(&str, &str)]) -> Worker {
        let port = free_port();
        let mut command = Command::new(bin("peyk-worker"));
        self.base_env(&mut command);
        command
            .env("PEYK_WORKER_ADDR", format!("127.0.0.1:{port}"))
            .env("PEYK_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8,::1")
            .env("PEYK_RETRY_BASE_SECONDS", "0.2")
            .env("PEYK_RETRY_MAX_SECONDS", "2")
            .env("PEYK_SWEEP_INTERVAL_SECONDS", "1")
            .envs(extra.iter().copied());
        let log_name = format!("{}-worker-{port}", self.name);
        let mut child = spawn(command, &log_name);
        let metrics_url = format!("http://127.0.0.1:{port}");
        wait_until_up(&self.http, &mut child, &format!("{metrics_url}/healthz"), &log_name).await;
        Worker { metrics_url, child, log: log_path(&log_name), cpu_slot: None }
    }
}

fn spawn(mut command: Command, log_name: &str) -> Child {
    let log = log_file(log_name);
    command.stdout(Stdio::null()).stderr(log).kill_on_drop(true);
    command.spawn().expect("spawn binary")
}

/// How long a started binary may take to answer its health check: generous,
/// since on a loaded 1-core machine a speech worker loads its models while
/// seven other tests start theirs.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits until `child` answers `url` with a success; panics at once if it exits.
pub async fn wait_until_up(http: &reqwest::Client, child: &mut Child, url: &str, log_name: &str) {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{log_name} exited ({status}) before answering {url}: see target/test-logs/{log_name}.log");
        }
        if let Ok(response) = http.get(url).send().await {
            if response.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} did not come up within {START_TIMEOUT:?}: see target/test-logs/{log_name}.log");
}

pub fn send_signal(child: &Child, signal: &str) {
    let pid = child.id().expect("process is running");
    let status = std::process::Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap();
    assert!(status.success());
}

pub struct Worker {
    pub metrics_url: String,
    pub child: Child,
    log: PathBuf,
    /// Held by a speech worker while it lives (see `start_speech_worker`).
    cpu_slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Worker {
    /// What the worker logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The worker process's environment as it runs (after any restart of its own).
    pub fn environment(&self) -> Vec<String> {
        let pid = self.child.id().expect("worker is running");
        let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        raw.split(|b| *b == 0).filter(|v| !v.is_empty()).map(|v| String::from_utf8_lossy(v).into_owned()).collect()
    }

    pub fn kill9(&mut self) {
        send_signal(&self.child, "KILL");
    }

    pub fn terminate(&self) {
        send_signal(&self.child, "TERM");
    }

    /// Waits for the process to exit; returns its exit status.
    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(within, self.child.wait()).await.expect("worker did not exit in time").unwrap()
    }
}

pub struct Api {
    pub url: String,
    pub child: Child,
    pub http: reqwest::Client,
}

impl Api {
    pub async fn request(&self, method: reqwest::Method, path: &str, key: Option<&str>, body: Option<&Value>) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("API answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> (u16, Value) {
        self.request(reqwest::Method::POST, path, Some(key), Some(body)).await
    }

    pub async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, Some(key), None).await
    }

    /// Submits a job, asserting 202; returns its id.
    pub async fn submit(&self, key: &str, body: &Value) -> String {
        let (status, job) = self.post("/v1/jobs", key, body).await;
        assert_eq!(status, 202, "submission refused: {job}");
        job["id"].as_str().unwrap().to_string()
    }

    pub async fn job(&self, key: &str, id: &str) -> Value {
        let (status, job) = self.get(&format!("/v1/jobs/{id}"), key).await;
        assert_eq!(status, 200, "{job}");
        job
    }

    /// Polls until the job reaches `status` (panics on timeout with the record).
    pub async fn wait_for_status(&self, key: &str, id: &str, status: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let job = self.job(key, id).await;
            if job["status"] == status {
                return job;
            }
            if Instant::now() > deadline {
                panic!("job {id} not {status} within {within:?}: {job:#}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `POST path` with a multipart form: `file` with these bytes and name,
    /// plus text fields.
    pub async fn upload_form(&self, path: &str, key: &str, file: Option<(&str, Vec<u8>)>, fields: &[(&str, &str)]) -> (u16, Value, String) {
        let mut form = reqwest::multipart::Form::new();
        if let Some((name, bytes)) = file {
            form = form.part("file", reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()));
        }
        for (name, value) in fields {
            form = form.text(name.to_string(), value.to_string());
        }
        // The OpenAI endpoints wait for the transcription: on a loaded test
        // machine that can take longer than the client's usual 30 s.
        let request = self.http.post(format!("{}{path}", self.url)).bearer_auth(key).multipart(form).timeout(Duration::from_secs(180));
        let response = request.send().await.expect("API answers");
        let status = response.status().as_u16();
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value, content_type)
    }

    /// Uploads a fixture (or any bytes) to `/v1/files`, asserting 201; returns the file id.
    pub async fn upload(&self, key: &str, name: &str, bytes: Vec<u8>) -> String {
        let (status, body, _) = self.upload_form("/v1/files", key, Some((name, bytes)), &[]).await;
        assert_eq!(status, 201, "upload refused: {body}");
        body["id"].as_str().unwrap().to_string()
    }

    pub async fn metrics(&self) -> String {
        self.http.get(format!("{}/metrics", self.url)).send().await.unwrap().text().await.unwrap()
    }
}

/// A provider server's worker environment (its `env()`) as the pairs
/// `start_worker_with` takes.
pub fn env_pairs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(name, value)| (*name, value.as_str())).collect()
}

/// A webhook submission body for `url`.
pub fn webhook(url: &str, body: Value) -> Value {
    serde_json::json!({ "type": "webhook", "payload": { "url": url, "body": body } })
}

/// A Redis server of the test's own (for restart tests).
pub struct OwnRedis {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
}

impl OwnRedis {
    pub async fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("peyk-redis-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = Self { port, child: None, dir };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port, empty: no persistence, so a restart
    /// loses everything Redis held.
    pub async fn restart(&mut self) {
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .kill_on_drop(true);
        self.child = Some(command.spawn().expect("redis-server"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
            let _ = child.wait().await;
        }
    }
}
