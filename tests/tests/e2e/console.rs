//! The console (`/console`) in a real browser: Debian's headless Chromium
//! through ChromeDriver (tests/src/browser.rs), against the real API and
//! worker. Screenshots of each page land in target/console-screenshots.

use std::path::PathBuf;
use std::time::Duration;

use peyk_tests::browser::Browser;
use peyk_tests::{webhook, Api, Reply, Sink, TestEnv};
use serde_json::{json, Value};

fn screenshot(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots").join(format!("{name}.png"))
}

async fn sign_in(browser: &Browser, api: &Api, key: &str) {
    browser.goto(&format!("{}/console", api.url)).await;
    assert!(browser.url().await.ends_with("/console/sign-in"), "not signed in: to the sign-in page");
    browser.type_into("#key", key).await;
    browser.click("#sign-in").await;
    browser.find("#queues-table").await;
    let url = browser.url().await;
    assert!(url.ends_with("/console/overview") && !url.contains(key), "{url}");
}

/// The sign-in form posted without a browser (keys are URL-safe characters);
/// the answer itself, not where it redirects.
async fn post_sign_in(api: &Api, key: &str) -> reqwest::Response {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let request = http.post(format!("{}/console/sign-in", api.url));
    request.header("content-type", "application/x-www-form-urlencoded").body(format!("key={key}")).send().await.unwrap()
}

/// Every request the browser sent over the network went to the API's own
/// address (Chromium's own pages, `chrome://…`, never leave the browser).
async fn only_own_host(browser: &Browser, api: &Api) {
    let requests = browser.requests().await;
    let network: Vec<&String> =
        requests.iter().filter(|url| ["http:", "https:", "ws:", "wss:"].iter().any(|s| url.starts_with(s))).collect();
    assert!(
        network.iter().any(|url| url.starts_with(&format!("{}/console", api.url))),
        "the log recorded no console request: {requests:?}"
    );
    let foreign: Vec<&&String> = network.iter().filter(|url| !url.starts_with(&format!("{}/", api.url))).collect();
    assert!(foreign.is_empty(), "requests to other hosts: {foreign:?}");
}

/// A webhook job that dies at its first failure.
async fn dead_job(api: &Api, key: &str, sink: &Sink) -> String {
    let mut job = webhook(&format!("{}/orders", sink.url), json!({"order": 1}));
    job["max_attempts"] = json!(1);
    let id = api.submit(key, &job).await;
    api.wait_for_status(key, &id, "dead", Duration::from_secs(20)).await;
    id
}

/// What `fetch` answers for a POST from the signed-in page.
async fn post_from_page(browser: &Browser, path: &str, form: Value) -> u64 {
    let script =
        "return fetch(arguments[0], {method: 'POST', body: new URLSearchParams(arguments[1]), redirect: 'manual'}).then(r => r.status)";
    browser.execute(script, json!([path, form])).await.as_u64().unwrap_or_default()
}

#[tokio::test]
async fn an_operator_signs_in_retries_dead_jobs_and_sees_them_succeed() {
    let env = TestEnv::new("console-dead").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let _worker = env.start_worker().await;
    let sink = Sink::start().await;
    sink.reply([Reply::status(500)]);
    let dead = dead_job(&api, &key, &sink).await;

    // The session cookie: HttpOnly, SameSite=Strict, on /console only.
    let response = post_sign_in(&api, &key).await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
    for part in ["peyk_console=", "HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=28800"] {
        assert!(cookie.contains(part), "{part} missing from {cookie}");
    }
    assert!(!cookie.contains(&key));
    let wrong = post_sign_in(&api, "peyk_wrong").await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());

    let browser = Browser::start().await;
    sign_in(&browser, &api, &key).await;
    browser.screenshot(&screenshot("overview")).await;

    // The dead job, from the list to its page, then retried.
    browser.goto(&format!("{}/console/dead", api.url)).await;
    browser.wait_for_text("#jobs-table", &dead, Duration::from_secs(5)).await;
    browser.screenshot(&screenshot("dead-letters")).await;
    browser.click(&format!("a[href='/console/jobs/{dead}']")).await;
    browser.wait_for_text("#job-status", "dead", Duration::from_secs(5)).await;
    assert!(browser.text("#attempts-table").await.contains("dead"), "the attempt's outcome is shown");
    browser.screenshot(&screenshot("job-dead")).await;

    // CSRF: the same action without the session's token is refused.
    let retry_path = format!("/console/jobs/{dead}/retry");
    assert_eq!(post_from_page(&browser, &retry_path, json!({})).await, 403);
    assert_eq!(post_from_page(&browser, &retry_path, json!({"csrf": "not-the-token"})).await, 403);
    assert_eq!(api.job(&key, &dead).await["status"], "dead", "a refused action changed nothing");

    browser.click("#retry").await;
    let mut status = String::new();
    for _ in 0..50 {
        browser.goto(&format!("{}/console/jobs/{dead}", api.url)).await;
        status = browser.text("#job-status").await;
        if status == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, "succeeded");
    browser.screenshot(&screenshot("job-succeeded")).await;

    // Bulk retry: the confirmation counts what the filter matches.
    sink.reply([Reply::status(500), Reply::status(500), Reply::status(500)]);
    let mut more = Vec::new();
    for _ in 0..3 {
        more.push(dead_job(&api, &key, &sink).await);
    }
    browser.goto(&format!("{}/console/dead?type=webhook", api.url)).await;
    browser.click("#retry-all").await;
    assert_eq!(browser.text("#match-count").await, "3");
    browser.screenshot(&screenshot("bulk-retry-confirmation")).await;
    browser.click("#confirm").await;
    browser.wait_for_text("#message", "3 jobs queued again", Duration::from_secs(10)).await;
    for id in &more {
        api.wait_for_status(&key, id, "succeeded", Duration::from_secs(20)).await;
    }
    only_own_host(&browser, &api).await;

    // Signing out ends the session: the pages send to the sign-in page again.
    browser.goto(&format!("{}/console/jobs", api.url)).await;
    browser.click("header form button").await;
    browser.find("#key").await;
    browser.goto(&format!("{}/console/jobs", api.url)).await;
    assert!(browser.url().await.ends_with("/console/sign-in"));
}

#[tokio::test]
async fn an_admin_pauses_a_queue_watches_it_live_and_reads_it_in_persian() {
    let env = TestEnv::new("console-admin").await;
    let admin = env.create_admin_key().await;
    let clinic = env.create_key("clinic").await;
    let api = env.start_api().await;
    let _worker = env.start_worker_with(&[("PEYK_CONTROL_SYNC_SECONDS", "0.2")]).await;
    let sink = Sink::start().await;

    let browser = Browser::start().await;
    sign_in(&browser, &api, &admin).await;
    browser.goto(&format!("{}/console/queues", api.url)).await;
    browser.click("#pause-webhook").await;
    browser.find("#resume-webhook").await;
    browser.screenshot(&screenshot("queues-paused")).await;
    let (_, queues) = api.get("/v1/admin/queues", &admin).await;
    let webhook_queue = queues["data"].as_array().unwrap().iter().find(|q| q["queue"] == "webhook").cloned().unwrap();
    assert_eq!(webhook_queue["paused"], true, "{webhook_queue}");

    // The overview follows the queue live, without reloading the page.
    browser.goto(&format!("{}/console/overview", api.url)).await;
    browser.execute("window.notReloaded = true", json!([])).await;
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(api.submit(&clinic, &webhook(&format!("{}/n{n}", sink.url), json!({"n": n}))).await);
    }
    browser.wait_for_text("tr[data-queue='webhook']", "clinic: 4", Duration::from_secs(10)).await;
    assert_eq!(browser.execute("return window.notReloaded === true", json!([])).await, true, "the page was reloaded");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(api.job(&clinic, &ids[0]).await["status"], "queued", "a paused queue runs nothing");

    browser.goto(&format!("{}/console/queues", api.url)).await;
    browser.click("#resume-webhook").await;
    browser.find("#pause-webhook").await;
    for id in &ids {
        api.wait_for_status(&clinic, id, "succeeded", Duration::from_secs(20)).await;
    }

    // The worker serving the queue, and the tasks it finished this minute.
    browser.goto(&format!("{}/console/overview", api.url)).await;
    browser.wait_for_text("#workers", "webhook", Duration::from_secs(10)).await;
    let done = browser.execute("return document.querySelector(\"tr[data-queue='webhook'] td:nth-child(8)\").innerText", json!([])).await;
    assert!(done.as_str().unwrap_or_default().parse::<f64>().unwrap_or(0.0) > 0.0, "no finished tasks shown: {done}");

    // Persian: right to left, Persian words, Persian calendar and digits.
    browser.goto(&format!("{}/console/jobs", api.url)).await;
    browser.click("#switch-language").await;
    browser.click("#switch-calendar").await;
    let layout = browser
        .execute(
            "return [document.documentElement.dir, getComputedStyle(document.body).direction, document.documentElement.lang]",
            json!([]),
        )
        .await;
    assert_eq!(layout, json!(["rtl", "rtl", "fa"]));
    assert!(browser.text("header nav").await.contains("نمای کلی"));
    browser.goto(&format!("{}/console/overview", api.url)).await;
    let updated = browser.text(".updated").await;
    assert!(updated.starts_with("۱۴") && !updated.chars().any(|c| c.is_ascii_digit()), "not a Persian date in Persian digits: {updated}");
    browser.screenshot(&screenshot("persian-overview")).await;
    only_own_host(&browser, &api).await;
}

#[tokio::test]
async fn a_schedule_is_created_from_the_form_with_messages_by_its_fields() {
    let env = TestEnv::new("console-schedules").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let _worker = env.start_worker().await;
    let sink = Sink::start().await;

    let browser = Browser::start().await;
    sign_in(&browser, &api, &key).await;
    browser.goto(&format!("{}/console/schedules", api.url)).await;
    browser.replace_text("#field-name", "morning-reminders").await;
    browser.replace_text("#field-cron", "61 9 * * *").await;
    browser.replace_text("#field-payload", &json!({"url": format!("{}/reminders", sink.url), "body": {}}).to_string()).await;
    browser.click("#create-schedule").await;

    // Refused: the message stands by the cron field, what was typed stays.
    let message = browser.text("#error-cron").await;
    assert!(message.contains("minute") || message.contains("61"), "{message}");
    assert_eq!(browser.attribute("#field-cron", "aria-invalid").await.as_deref(), Some("true"));
    assert_eq!(browser.attribute("#field-name", "value").await.as_deref(), Some("morning-reminders"));
    assert!(browser.execute("return document.querySelector('#error-name') === null", json!([])).await == true);
    let (_, listed) = api.get("/v1/schedules", &key).await;
    assert_eq!(listed["data"], json!([]), "nothing was created");
    browser.screenshot(&screenshot("schedule-form-error")).await;

    browser.replace_text("#field-cron", "0 9 * * *").await;
    browser.click("#create-schedule").await;
    browser.wait_for_text("#schedule-status", "Active", Duration::from_secs(5)).await;
    let runs = browser.execute("return document.querySelectorAll('#next-runs li').length", json!([])).await;
    assert_eq!(runs, 5, "five next runs are shown");
    browser.click("#trigger-schedule").await;
    browser.wait_for_text("#history-table", "submitted", Duration::from_secs(5)).await;
    sink.wait_for(1, Duration::from_secs(20)).await;
    browser.click("#pause-schedule").await;
    browser.wait_for_text("#schedule-status", "Paused", Duration::from_secs(5)).await;
    browser.screenshot(&screenshot("schedule")).await;
    let (_, listed) = api.get("/v1/schedules", &key).await;
    assert_eq!(listed["data"][0]["paused"], true, "{listed}");
    assert_eq!(listed["data"][0]["cron"], "0 9 * * *");
    only_own_host(&browser, &api).await;
}
