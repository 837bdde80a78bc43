//! A real browser for the console's tests: Debian's headless Chromium driven
//! through ChromeDriver over the W3C WebDriver protocol (plain JSON over
//! HTTP, spoken here with reqwest rather than through a client crate).
//! Chromium starts with a fresh profile, no background networking, and every
//! host name but 127.0.0.1 unresolvable, so that a page that tried to load
//! something from another host would fail; its performance log lists every
//! request it made, which `requests` returns.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::free_port;

/// The W3C key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
    profile: std::path::PathBuf,
}

impl Browser {
    /// ChromeDriver (`PEYK_TEST_CHROMEDRIVER`) and Chromium
    /// (`PEYK_TEST_CHROMIUM`), both set by infrastructure/dev/test.sh.
    pub async fn start() -> Self {
        let driver = std::env::var("PEYK_TEST_CHROMEDRIVER").expect("PEYK_TEST_CHROMEDRIVER is set by infrastructure/dev/test.sh");
        let chromium = std::env::var("PEYK_TEST_CHROMIUM").expect("PEYK_TEST_CHROMIUM is set by infrastructure/dev/test.sh");
        let port = free_port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            // A process group of its own, which the Chromium it starts joins:
            // `Drop` ends them all together.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {driver}: {e}"));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "ChromeDriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = std::env::temp_dir().join(format!("peyk-browser-{}", uuid::Uuid::now_v7()));
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": { "performance": "ALL" },
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-extensions", "--disable-default-apps", "--window-size=1280,900",
                    // The console's audio player starts when a segment is clicked.
                    "--autoplay-policy=no-user-gesture-required",
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let answer: Value = http.post(format!("{base}/session")).json(&capabilities).send().await.unwrap().json().await.unwrap();
        let session = answer["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {answer}")).to_string();
        Browser { http, session: format!("{base}/session/{session}"), driver: child, profile }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        if answer["value"]["error"].is_string() {
            panic!("WebDriver {path}: {}", answer["value"]);
        }
        answer["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_string()
    }

    /// The first element matching `css`, waiting up to 10 s for it.
    pub async fn find(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            let answer: Value = self
                .http
                .post(format!("{}/element", self.session))
                .json(&json!({ "using": "css selector", "value": css }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(id) = answer["value"][ELEMENT].as_str() {
                return id.to_string();
            }
            assert!(started.elapsed() < Duration::from_secs(10), "no element {css} on {}", self.url().await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/click"), Some(json!({}))).await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/value"), Some(json!({ "text": text }))).await;
    }

    /// Replaces what a field holds with `text`.
    pub async fn replace_text(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/clear"), Some(json!({}))).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/value"), Some(json!({ "text": text }))).await;
    }

    pub async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let id = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{id}/attribute/{name}"), None).await.as_str().map(str::to_string)
    }

    /// `css`'s text once it is on the page.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await;
        self.text_in_page(css).await.trim().to_string()
    }

    /// `css`'s text as the page shows it now (empty when absent). Read in
    /// the page, not through an element reference: a live part (the
    /// overview's `.updated`) replaced between finding and reading would be
    /// stale.
    async fn text_in_page(&self, css: &str) -> String {
        let script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : ''";
        self.execute(script, json!([css])).await.as_str().unwrap_or_default().to_string()
    }

    /// Waits up to `within` for `css`'s text to contain `wanted`.
    pub async fn wait_for_text(&self, css: &str, wanted: &str, within: Duration) {
        let started = Instant::now();
        loop {
            let text = self.text_in_page(css).await;
            if text.contains(wanted) {
                return;
            }
            assert!(started.elapsed() < within, "{css} still shows {text:?}, not {wanted:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({ "script": script, "args": args }))).await
    }

    pub async fn screenshot(&self, path: &Path) {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = STANDARD.decode(png.as_str().unwrap_or_default()).unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, bytes).unwrap();
    }

    /// The URL of every request the browser sent since the last call
    /// (Chromium's performance log: `Network.requestWillBeSent`).
    pub async fn requests(&self) -> Vec<String> {
        let entries = self.call(reqwest::Method::POST, "/se/log", Some(json!({ "type": "performance" }))).await;
        entries
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| serde_json::from_str::<Value>(entry["message"].as_str()?).ok())
            .filter(|message| message["message"]["method"] == "Network.requestWillBeSent")
            .filter_map(|message| message["message"]["params"]["request"]["url"].as_str().map(str::to_string))
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Killing ChromeDriver alone left its Chromium running (67 processes
        // after the six console tests): the whole group goes, also when a
        // test panics. `Drop` cannot wait for WebDriver's own
        // `DELETE /session`.
        if let Some(group) = self.driver.id() {
            let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{group}")]).status();
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
