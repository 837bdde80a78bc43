//! The console (`/console`) in a real browser: Debian's headless Chromium
//! through ChromeDriver (tests/src/browser.rs), against the real API and
//! worker. Screenshots of each page land in target/console-screenshots.

use std::path::PathBuf;
use std::time::Duration;

use peyk_tests::browser::Browser;
use peyk_tests::gateways::{self, Zarinpal};
use peyk_tests::speech::fixture;
use peyk_tests::{webhook, Api, Reply, Sink, TestEnv};
use serde_json::{json, Value};

fn screenshot(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots").join(format!("{name}.png"))
}

async fn sign_in(browser: &Browser, api: &Api, key: &str) {
    browser.goto(&format!("{}/console", api.url)).await;
    assert!(browser.url().await.ends_with("/console/sign-in"), "not signed in: to the sign-in page");
    browser.screenshot(&screenshot("sign-in")).await;
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
    // Read in the page: the live updates replace the element every 2 s.
    let failed = browser.execute("return document.getElementById('failure-rate').innerText", json!([])).await;
    assert!(failed.as_str().unwrap_or_default().ends_with(": 1"), "the tenant's one failed attempt of the last minute: {failed}");
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
    browser.goto(&format!("{}/console/schedules", api.url)).await;
    browser.wait_for_text("main", "morning-reminders", Duration::from_secs(5)).await;
    browser.screenshot(&screenshot("schedules")).await;
    let (_, listed) = api.get("/v1/schedules", &key).await;
    assert_eq!(listed["data"][0]["paused"], true, "{listed}");
    assert_eq!(listed["data"][0]["cron"], "0 9 * * *");
    only_own_host(&browser, &api).await;
}

/// The tenant id of `name`, from the admin API.
async fn tenant_id(api: &Api, admin: &str, name: &str) -> String {
    let (_, tenants) = api.get("/v1/admin/tenants", admin).await;
    let found = tenants["data"].as_array().unwrap().iter().find(|t| t["name"] == name);
    found.unwrap_or_else(|| panic!("no tenant {name}: {tenants}"))["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_transcript_plays_from_the_segment_clicked_and_shows_its_pipeline() {
    let env = TestEnv::new("console-transcript").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let _worker = env.start_speech_worker(&[("PEYK_QUEUES", "transcription,webhook")]).await;
    let sink = Sink::start().await;
    let file_id = api.upload(&key, "jfk.wav", fixture("jfk.wav")).await;
    let (status, pipeline) = api
        .post(
            "/v1/pipelines",
            &key,
            &json!({ "steps": [
                { "type": "transcription", "payload": { "file_id": file_id, "model": "tiny.en", "language": "en", "speakers": true } },
                { "type": "webhook", "payload": { "url": format!("{}/transcript", sink.url), "body": { "text": { "from": "steps.0.result.text" } } } },
            ] }),
        )
        .await;
    assert_eq!(status, 202, "{pipeline}");
    let transcription = pipeline["steps"][0]["job_id"].as_str().unwrap().to_string();
    let job = api.wait_for_status(&key, &transcription, "succeeded", Duration::from_secs(120)).await;
    sink.wait_for(1, Duration::from_secs(20)).await;
    let segments = job["result"]["segments"].as_array().unwrap().clone();

    let browser = Browser::start().await;
    sign_in(&browser, &api, &key).await;
    browser.goto(&format!("{}/console/jobs/{transcription}", api.url)).await;
    browser.find("#player").await;
    let shown = browser.execute("return document.querySelectorAll('#segments .segment').length", json!([])).await;
    assert_eq!(shown, segments.len(), "every segment is listed");
    assert!(browser.text("#segments").await.contains("ask not what your country"), "the transcript's text");
    assert!(browser.text("#speakers").await.contains("S1"), "the speakers are shown");
    // The step list: this transcription, then the webhook it fed.
    browser.wait_for_text("#pipeline-steps", "webhook", Duration::from_secs(5)).await;
    let steps = browser.execute("return [...document.querySelectorAll('#pipeline-steps tbody tr')].map(r => r.innerText)", json!([])).await;
    let steps: Vec<&str> = steps.as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert!(steps.len() == 2 && steps[0].contains("transcription") && steps.iter().all(|s| s.contains("succeeded")), "{steps:?}");

    // Clicking the last segment plays the recording from its start.
    let start = segments.iter().map(|s| s["start"].as_f64().unwrap()).fold(0.0, f64::max);
    browser.click("#segments li:last-child .segment").await;
    let mut heard = json!(null);
    for _ in 0..50 {
        heard = browser.execute("const p = document.getElementById('player'); return [p.currentTime, p.paused]", json!([])).await;
        if heard[0].as_f64().unwrap_or(0.0) > start + 0.3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let at = heard[0].as_f64().unwrap_or(0.0);
    assert!(at > start + 0.3 && at < start + 6.0, "playing from {start} s: {heard}");
    assert!(browser.attribute("#segments li:last-child", "class").await.unwrap_or_default().contains("playing"));
    browser.screenshot(&screenshot("job-transcript")).await;

    // The player's byte ranges: a part of the file as 206, past its end 416.
    let range = "return fetch(arguments[0], {headers: {Range: arguments[1]}}).then(r => [r.status, r.headers.get('content-range'), r.headers.get('content-length')])";
    let audio = format!("/console/jobs/{transcription}/audio");
    let size = fixture("jfk.wav").len();
    let part = browser.execute(range, json!([audio, "bytes=100-199"])).await;
    assert_eq!(part, json!([206, format!("bytes 100-199/{size}"), "100"]));
    let past = browser.execute(range, json!([audio, format!("bytes={size}-")])).await;
    assert_eq!(past[0], 416, "{past}");
    only_own_host(&browser, &api).await;

    // Another tenant's key hears nothing of it.
    let other = env.create_key("shop").await;
    let response = post_sign_in(&api, &other).await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let stranger = api.http.get(format!("{}{audio}", api.url)).header("cookie", cookie).send().await.unwrap();
    assert_eq!(stranger.status(), 404);
}

#[tokio::test]
async fn an_admin_filters_every_tenants_jobs_discards_dead_letters_and_pauses_one_tenant() {
    let env = TestEnv::new("console-tenants").await;
    let admin = env.create_admin_key().await;
    let clinic = env.create_key("clinic").await;
    let shop = env.create_key("shop").await;
    let api = env.start_api().await;
    let _worker = env.start_worker_with(&[("PEYK_CONTROL_SYNC_SECONDS", "0.2")]).await;
    let (failing, ok) = (Sink::start().await, Sink::start().await);
    failing.reply([Reply::status(500), Reply::status(500), Reply::status(500)]);
    let clinic_dead = [dead_job(&api, &clinic, &failing).await, dead_job(&api, &clinic, &failing).await];
    let shop_dead = dead_job(&api, &shop, &failing).await;
    let mut keyed = webhook(&format!("{}/visit", ok.url), json!({"visit": 77}));
    keyed["idempotency_key"] = json!("visit-77");
    let keyed = api.submit(&clinic, &keyed).await;
    api.wait_for_status(&clinic, &keyed, "succeeded", Duration::from_secs(20)).await;
    let (clinic_id, shop_id) = (tenant_id(&api, &admin, "clinic").await, tenant_id(&api, &admin, "shop").await);

    let browser = Browser::start().await;
    sign_in(&browser, &api, &admin).await;
    // Every tenant's jobs, then one tenant's, each with its tenant's name.
    browser.goto(&format!("{}/console/jobs", api.url)).await;
    let all = browser.text("#jobs-table").await;
    assert!(all.contains(&shop_dead) && all.contains(&clinic_dead[0]) && all.contains("shop") && all.contains("clinic"), "{all}");
    browser.goto(&format!("{}/console/jobs?tenant={clinic_id}", api.url)).await;
    let clinic_only = browser.text("#jobs-table").await;
    assert!(clinic_only.contains(&clinic_dead[1]) && !clinic_only.contains(&shop_dead), "{clinic_only}");
    browser.screenshot(&screenshot("jobs-one-tenant")).await;
    // By idempotency key; by creation time (Tehran): none from an hour ahead.
    browser.goto(&format!("{}/console/jobs?key=visit-77", api.url)).await;
    assert_eq!(browser.execute("return document.querySelectorAll('#jobs-table tbody tr').length", json!([])).await, 1);
    assert!(browser.text("#jobs-table").await.contains(&keyed));
    let tehran = chrono::FixedOffset::east_opt(3 * 3600 + 1800).unwrap();
    let in_an_hour = (chrono::Utc::now() + chrono::Duration::hours(1)).with_timezone(&tehran).format("%Y-%m-%dT%H:%M").to_string();
    let an_hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1)).with_timezone(&tehran).format("%Y-%m-%dT%H:%M").to_string();
    browser.goto(&format!("{}/console/jobs?from={in_an_hour}", api.url)).await;
    assert!(browser.execute("return document.querySelector('#jobs-table') === null", json!([])).await == true);
    browser.goto(&format!("{}/console/jobs?from={an_hour_ago}&to={in_an_hour}&tenant={shop_id}", api.url)).await;
    assert!(browser.text("#jobs-table").await.contains(&shop_dead));
    browser.goto(&format!("{}/console/jobs?from=yesterday", api.url)).await;
    assert!(browser.text("#message").await.contains("from"), "the field is named");

    // Discard the clinic's dead letters: the count, then erased; the shop's stay.
    browser.goto(&format!("{}/console/dead?tenant={clinic_id}", api.url)).await;
    browser.click("#discard-all").await;
    assert_eq!(browser.text("#match-count").await, "2");
    browser.screenshot(&screenshot("discard-confirmation")).await;
    browser.click("#confirm").await;
    browser.wait_for_text("#message", "2 dead jobs discarded", Duration::from_secs(10)).await;
    for id in &clinic_dead {
        assert!(!api.job(&clinic, id).await["erased_at"].is_null(), "{id} erased");
    }
    let shop_job = api.job(&shop, &shop_dead).await;
    assert!(shop_job["status"] == "dead" && shop_job["erased_at"].is_null(), "{shop_job}");
    browser.goto(&format!("{}/console/dead", api.url)).await;
    let left = browser.text("#jobs-table").await;
    assert!(left.contains(&shop_dead) && !left.contains(&clinic_dead[0]), "{left}");

    // Pause the clinic in the webhook queue: the shop's job runs, the clinic's waits.
    browser.goto(&format!("{}/console/queues", api.url)).await;
    assert!(browser.text("#tenant-limits").await.contains("clinic"));
    browser
        .execute(
            "document.getElementById('pause-tenant').value = arguments[0]; document.getElementById('pause-queue').value = 'webhook'",
            json!([clinic_id]),
        )
        .await;
    browser.click("#pause-tenant-in-queue").await;
    browser.find(&format!("#resume-webhook-{clinic_id}")).await;
    let waits = api.submit(&clinic, &webhook(&format!("{}/waits", ok.url), json!({}))).await;
    let runs = api.submit(&shop, &webhook(&format!("{}/runs", ok.url), json!({}))).await;
    api.wait_for_status(&shop, &runs, "succeeded", Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(api.job(&clinic, &waits).await["status"], "queued", "a paused tenant's job waits");
    browser.goto(&format!("{}/console/queues", api.url)).await;
    browser.screenshot(&screenshot("queues-tenant-paused")).await;
    browser.click(&format!("#resume-webhook-{clinic_id}")).await;
    api.wait_for_status(&clinic, &waits, "succeeded", Duration::from_secs(20)).await;
    only_own_host(&browser, &api).await;
}

#[tokio::test]
async fn webhook_messages_are_replayed_and_a_payment_shows_its_callbacks_and_verification() {
    let env = TestEnv::new("console-integrations").await;
    let key = env.create_key("shop").await;
    let api = env.start_api().await;
    let zarinpal = Zarinpal::start().await;
    let _worker = env.start_worker_with(&peyk_tests::env_pairs(&zarinpal.env())).await;
    let (endpoint, target) = (Sink::start().await, Sink::start().await);
    let (status, created) = api.post("/v1/webhook-endpoints", &key, &json!({"url": format!("{}/events", endpoint.url)})).await;
    assert_eq!(status, 201, "{created}");
    let job = api.submit(&key, &webhook(&target.url, json!({"n": 1}))).await;
    api.wait_for_status(&key, &job, "succeeded", Duration::from_secs(20)).await;
    endpoint.wait_for(1, Duration::from_secs(15)).await;

    let browser = Browser::start().await;
    sign_in(&browser, &api, &key).await;
    browser.goto(&format!("{}/console/webhooks", api.url)).await;
    assert!(browser.text("#endpoints-table").await.contains(&endpoint.url));
    assert!(browser.text("#messages-table").await.contains("job.succeeded"));
    browser.screenshot(&screenshot("webhooks")).await;
    browser.click("#messages-table a").await;
    browser.wait_for_text("#deliveries-table", "200", Duration::from_secs(10)).await;
    browser.click("#replay").await;
    browser.wait_for_text(".notice", "Deliveries queued", Duration::from_secs(5)).await;
    let again = endpoint.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(again[0].headers["webhook-id"], again[1].headers["webhook-id"], "the same message delivered again");
    let url = browser.url().await;
    let mut rows = json!(0);
    for _ in 0..50 {
        browser.goto(&url).await;
        rows = browser.execute("return document.querySelectorAll('#deliveries-table tbody tr').length", json!([])).await;
        if rows == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(rows, 2, "the replay's attempt is listed");
    browser.screenshot(&screenshot("webhook-message")).await;

    // A Zarinpal payment: registered, paid, called back, verified.
    let (status, account) = api
        .request(
            reqwest::Method::PUT,
            "/v1/payment-accounts/zarinpal",
            Some(&key),
            Some(&json!({ "credentials": { "merchant_id": gateways::ZARINPAL_MERCHANT }, "sandbox": true })),
        )
        .await;
    assert_eq!(status, 200, "{account}");
    let authority = zarinpal.create_payment(1_500_000);
    let payment = json!({ "gateway": "zarinpal", "reference": authority, "amount": 1_500_000, "currency": "IRR", "order_id": "order-7" });
    let (status, registered) = api.post("/v1/payments", &key, &payment).await;
    assert_eq!(status, 201, "{registered}");
    let payment_id = registered["payment_id"].as_str().unwrap().to_string();
    zarinpal.pay(&authority);
    let callback = format!("{}?Authority={authority}&Status=OK", account["callback_path"].as_str().unwrap());
    let (status, answer) = api.request(reqwest::Method::GET, &callback, None, None).await;
    assert_eq!(status, 200, "{answer}");
    let mut verified = false;
    for _ in 0..100 {
        verified = api.get(&format!("/v1/payments/{payment_id}"), &key).await.1["status"] == "verified";
        if verified {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(verified, "the payment was verified");

    browser.goto(&format!("{}/console/payments", api.url)).await;
    assert!(browser.text("#payments-table").await.contains("order-7"));
    browser.screenshot(&screenshot("payments")).await;
    browser.click(&format!("a[href^='/console/payments/{payment_id}']")).await;
    browser.wait_for_text("#payment-status", "verified", Duration::from_secs(5)).await;
    assert!(browser.text("main").await.contains(&format!("Authority={authority}&Status=OK")), "the callback as it came");
    assert!(browser.text(".verification-attempts").await.contains("succeeded"), "the verification's attempt");
    browser.screenshot(&screenshot("payment")).await;
    only_own_host(&browser, &api).await;
}
