//! Schedules end to end, on real PostgreSQL and Redis with real workers:
//! exactly once per fire time across a fleet that loses a worker, the
//! misfire policies after the fleet was down for a minute, overlap, pause
//! and resume, quotas, the Persian calendar and daylight saving in
//! `next_runs`, and every validation case.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use peyk_tests::{Api, Reply, Sink, TestEnv};
use serde_json::{json, Value};

async fn create(api: &Api, key: &str, body: Value) -> Value {
    let (status, schedule) = api.post("/v1/schedules", key, &body).await;
    assert_eq!(status, 201, "{schedule}");
    schedule
}

fn hook(url: &str) -> Value {
    json!({ "type": "webhook", "payload": { "url": url, "body": { "from": "schedule" } } })
}

/// Every fire of a schedule, oldest first.
async fn history(api: &Api, key: &str, id: &str) -> Vec<Value> {
    let (mut fires, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/v1/schedules/{id}/history?limit=200&cursor={cursor}"),
            None => format!("/v1/schedules/{id}/history?limit=200"),
        };
        let (status, page) = api.get(&path, key).await;
        assert_eq!(status, 200, "{page}");
        fires.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    fires.reverse();
    fires
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap_or_else(|| panic!("not a time: {value}")).parse().unwrap()
}

fn submitted(fires: &[Value]) -> Vec<&Value> {
    fires.iter().filter(|f| f["outcome"] == "submitted" && f["manual"] == false).collect()
}

async fn post_ok(api: &Api, key: &str, path: &str) -> Value {
    let (status, body) = api.post(path, key, &json!({})).await;
    assert!(status == 200 || status == 202, "{path}: {status} {body}");
    body
}

#[tokio::test]
async fn a_one_second_schedule_fires_exactly_once_per_second_across_three_workers_one_killed() {
    let env = TestEnv::new("sched-once").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let sink = Sink::start().await;
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(env.start_worker_with(&[("PEYK_QUEUES", "webhook")]).await);
    }
    let schedule = create(&api, &key, json!({ "name": "every-second", "every_seconds": 1, "job": hook(&sink.url) })).await;
    let id = schedule["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await;
    workers[0].kill9();
    tokio::time::sleep(Duration::from_secs(13)).await;
    post_ok(&api, &key, &format!("/v1/schedules/{id}/pause")).await;

    let fires = history(&api, &key, id).await;
    let runs = submitted(&fires);
    assert!(runs.len() >= 19, "{} fires in 20 s: {fires:?}", runs.len());
    assert_eq!(runs.len(), fires.len(), "every fire submitted (none missed or skipped): {fires:?}");
    // One fire per second, none twice, none left out.
    for pair in runs.windows(2) {
        assert_eq!((time(&pair[1]["fire_at"]) - time(&pair[0]["fire_at"])).num_milliseconds(), 1000, "{pair:?}");
    }
    let jobs: HashSet<&str> = runs.iter().map(|f| f["job_id"].as_str().unwrap()).collect();
    assert_eq!(jobs.len(), runs.len());
    // Stored ahead (an `overlap: allow` schedule) or at most a second late.
    let mut recorded: Vec<i64> = runs.iter().map(|f| (time(&f["fired_at"]) - time(&f["fire_at"])).num_milliseconds()).collect();
    recorded.sort_unstable();
    assert!(recorded[recorded.len() - 1] < 1000, "a fire recorded over 1 s late (ms, sorted): {recorded:?}");

    // The jobs carry the schedule, went through the ordinary queue and were delivered once each.
    sink.wait_for(runs.len(), Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.count(), runs.len(), "each fire delivered once");
    let (status, listed) = api.get(&format!("/v1/jobs?schedule_id={id}&limit=200"), &key).await;
    assert_eq!(status, 200, "{listed}");
    let jobs = listed["data"].as_array().unwrap();
    assert_eq!(jobs.len(), runs.len());
    assert!(jobs.iter().all(|j| j["schedule_id"] == id));
    // Each job ran at its fire time, not before; nine in ten within a second
    // and all but one (the killed worker may have taken one with it,
    // recovered later) within three: the bounds leave room for a slower
    // machine running this area's other tests beside it.
    let fire_of: HashMap<&str, DateTime<Utc>> = runs.iter().map(|f| (f["job_id"].as_str().unwrap(), time(&f["fire_at"]))).collect();
    let mut started: Vec<i64> = jobs
        .iter()
        .map(|j| {
            // Due at its fire time, or when it was stored if that was later
            // (a fire stored late, not ahead: `max(fire time, now)`).
            let fire_at = fire_of[j["id"].as_str().unwrap()];
            let due_after = (time(&j["run_at"]) - fire_at).num_milliseconds();
            assert!((0..1000).contains(&due_after), "due {due_after} ms after its fire time: {j}");
            (time(&j["started_at"]) - fire_at).num_milliseconds()
        })
        .collect();
    started.sort_unstable();
    assert!(started[0] >= 0, "a job started before its fire time (ms, sorted): {started:?}");
    let within_a_second = started.iter().filter(|&&ms| ms < 1000).count();
    assert!(within_a_second * 10 >= started.len() * 9, "under 90 % started within 1 s of their fire time (ms, sorted): {started:?}");
    assert!(started[started.len() - 2] < 3000, "jobs started over 3 s after their fire time (ms, sorted): {started:?}");

    let metrics = env.http.get(format!("{}/metrics", workers[1].metrics_url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("peyk_schedule_fires_total{outcome=\"submitted\"}"), "{metrics}");
    assert!(metrics.contains("peyk_schedule_fire_lateness_seconds_bucket"), "{metrics}");
}

#[tokio::test]
async fn fires_stored_ahead_wait_for_their_time_and_an_edit_or_pause_undoes_them() {
    let env = TestEnv::new("sched-ahead").await;
    let key = env.create_key("clinic").await;
    env.sql_exec("UPDATE tenants SET jobs_per_day = 1000").await;
    let api = env.start_api().await;
    let sink = Sink::start().await;
    let _worker = env.start_worker_with(&[("PEYK_QUEUES", "webhook"), ("PEYK_SCHEDULER_LOOKAHEAD_SECONDS", "8")]).await;
    let job = |path: &str| json!({ "type": "webhook", "payload": { "url": format!("{}/{path}", sink.url), "body": {} } });
    let schedule = create(&api, &key, json!({ "name": "ahead", "every_seconds": 2, "job": job("before") })).await;
    let id = schedule["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Fires up to 8 s ahead are stored, their jobs waiting for their time.
    let now = Utc::now();
    let fires = history(&api, &key, &id).await;
    let ahead: Vec<&Value> = fires.iter().filter(|f| time(&f["fire_at"]) > now + chrono::Duration::milliseconds(500)).collect();
    assert!(ahead.len() >= 3, "fires stored ahead: {fires:?}");
    assert!(ahead.iter().all(|f| f["outcome"] == "submitted" && f["job_status"] == "scheduled"), "{ahead:?}");
    let due = fires.len() - ahead.len();
    assert!(sink.count() <= due, "a job ran before its fire time: {} deliveries, {due} fires due", sink.count());

    // An edit undoes them: from then on, the fires run the job as edited.
    let (status, body) =
        api.request(reqwest::Method::PATCH, &format!("/v1/schedules/{id}"), Some(&key), Some(&json!({ "job": job("after") }))).await;
    assert_eq!(status, 200, "{body}");
    let edited_at = Utc::now();
    for fire in &ahead {
        let (status, _) = api.get(&format!("/v1/jobs/{}", fire["job_id"].as_str().unwrap()), &key).await;
        assert_eq!(status, 404, "the job of an undone fire stays: {fire}");
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let fires = history(&api, &key, &id).await;
    let runs = submitted(&fires);
    for pair in runs.windows(2) {
        assert_eq!((time(&pair[1]["fire_at"]) - time(&pair[0]["fire_at"])).num_milliseconds(), 2000, "none left out: {fires:?}");
    }
    let paths: Vec<String> = sink.received().iter().map(|r| r.path.clone()).collect();
    assert!(paths.contains(&"/after".to_string()), "{paths:?}");
    let delivered_after: Vec<&Value> =
        runs.iter().copied().filter(|f| time(&f["fire_at"]) > edited_at + chrono::Duration::seconds(1)).collect();
    assert!(!delivered_after.is_empty());
    let (_, later) = api.get(&format!("/v1/jobs/{}", delivered_after[0]["job_id"].as_str().unwrap()), &key).await;
    assert!(later["payload"]["url"].as_str().unwrap().ends_with("/after"), "{later}");

    // A pause undoes them too, and gives back their charge on the quota.
    let paused = post_ok(&api, &key, &format!("/v1/schedules/{id}/pause")).await;
    let paused_at = Utc::now();
    let fires = history(&api, &key, &id).await;
    assert!(fires.iter().all(|f| time(&f["fire_at"]) <= paused_at), "fires left ahead of a pause: {fires:?}");
    let jobs_stored = submitted(&fires).len();
    let (_, usage) = api.get("/v1/usage", &key).await;
    assert_eq!(usage["used"]["jobs"], jobs_stored, "{usage}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sink.count(), jobs_stored, "deliveries after the pause");
    assert_eq!(paused["paused"], true);
}

#[tokio::test]
async fn misfire_policies_after_the_fleet_was_stopped_for_a_minute() {
    let env = TestEnv::new("sched-misfire").await;
    let key = env.create_key("reports").await;
    let api = env.start_api().await;
    let sink = Sink::start().await;
    let worker = env.start_worker_with(&[("PEYK_QUEUES", "webhook")]).await;
    let mut ids = Vec::new();
    for (name, misfire) in [("skip", "skip"), ("once", "run_once"), ("all", "run_all")] {
        let body = json!({ "name": name, "every_seconds": 5, "misfire": misfire, "misfire_cap": 3, "misfire_grace_seconds": 2,
                           "job": hook(&sink.url) });
        ids.push(create(&api, &key, body).await["id"].as_str().unwrap().to_string());
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut worker = worker;
    worker.terminate();
    worker.wait_exit(Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let restarted = Utc::now();
    let _worker = env.start_worker_with(&[("PEYK_QUEUES", "webhook")]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    for (id, misfire) in ids.iter().zip(["skip", "run_once", "run_all"]) {
        let fires = history(&api, &key, id).await;
        // Runs caught up after the outage: fired more than the 2 s grace after
        // their time (a fire time just before the restart may fall either side
        // of the grace, depending on how long the worker took to start).
        let beyond_grace = |f: &&Value| time(&f["fired_at"]) - time(&f["fire_at"]) > chrono::Duration::seconds(2);
        let missed: Vec<&Value> = fires.iter().filter(|f| f["outcome"] == "missed").collect();
        let caught_up = submitted(&fires).into_iter().filter(beyond_grace).count() as i64;
        let missed_count: i64 = missed.iter().map(|f| f["missed"].as_i64().unwrap()).sum();
        let late = caught_up + missed_count;
        // About 12 fire times in the outage, less the two or so stored ahead
        // (10 s lookahead) before it, which run at their time once a worker is back.
        assert!((8..=13).contains(&late), "{misfire}: {late} late fire times in a 60 s outage of a 5 s schedule: {fires:?}");
        let expected_runs = match misfire {
            "skip" => 0,
            "run_once" => 1,
            _ => 3,
        };
        assert_eq!(caught_up, expected_runs, "{misfire}: {fires:?}");
        assert_eq!(missed.len(), 1, "{misfire}: the missed fire times are one entry: {fires:?}");
        // And it goes on at its usual pace.
        let (_, schedule) = api.get(&format!("/v1/schedules/{id}"), &key).await;
        assert!(time(&schedule["next_runs"][0]["at"]) > restarted, "{schedule}");
    }
}

#[tokio::test]
async fn overlap_skip_and_queue_one_with_a_slow_job() {
    let env = TestEnv::new("sched-overlap").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let sink = Sink::start().await;
    sink.default_reply(Reply::status(200).delay(Duration::from_millis(2500)));
    let _worker = env.start_worker_with(&[("PEYK_QUEUES", "webhook")]).await;
    let skip = create(&api, &key, json!({ "name": "skip", "every_seconds": 1, "overlap": "skip", "job": hook(&sink.url) })).await;
    let queue_one = create(&api, &key, json!({ "name": "one", "every_seconds": 1, "overlap": "queue_one", "job": hook(&sink.url) })).await;
    tokio::time::sleep(Duration::from_secs(9)).await;
    for schedule in [&skip, &queue_one] {
        post_ok(&api, &key, &format!("/v1/schedules/{}/pause", schedule["id"].as_str().unwrap())).await;
    }
    tokio::time::sleep(Duration::from_secs(6)).await;

    for (schedule, waiting_outcome) in [(&skip, "skipped_overlap"), (&queue_one, "buffered")] {
        let id = schedule["id"].as_str().unwrap();
        let fires = history(&api, &key, id).await;
        let runs = submitted(&fires);
        assert!((2..=5).contains(&runs.len()), "{waiting_outcome}: {fires:?}");
        assert!(fires.iter().filter(|f| f["outcome"] == "skipped_overlap").count() >= 3, "{fires:?}");
        if waiting_outcome == "buffered" {
            // A buffered fire became `submitted` once the run before it ended:
            // only the latest run (if the pause came first) may still wait.
            let buffered = fires.iter().filter(|f| f["outcome"] == "buffered").count();
            let latest_run = fires.iter().rfind(|f| f["outcome"] != "skipped_overlap").unwrap();
            assert!(buffered == 0 || (buffered == 1 && latest_run["outcome"] == "buffered"), "{fires:?}");
        }
        // No two runs of the schedule were ever under way at once.
        let (_, listed) = api.get(&format!("/v1/jobs?schedule_id={id}&limit=200"), &key).await;
        let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["status"] == "succeeded")
            .map(|j| (time(&j["created_at"]), time(&j["finished_at"])))
            .collect();
        spans.sort();
        for pair in spans.windows(2) {
            assert!(pair[1].0 >= pair[0].1, "{waiting_outcome}: a run was submitted before the previous one finished: {pair:?}");
        }
    }
}

#[tokio::test]
async fn pause_fires_nothing_and_resume_goes_on_without_a_burst_unless_misfire_asks() {
    let env = TestEnv::new("sched-pause").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let sink = Sink::start().await;
    let _worker = env.start_worker_with(&[("PEYK_QUEUES", "webhook")]).await;
    let quiet = create(&api, &key, json!({ "name": "quiet", "every_seconds": 1, "misfire": "skip", "job": hook(&sink.url) })).await;
    let burst = create(
        &api,
        &key,
        json!({ "name": "burst", "every_seconds": 1, "misfire": "run_all", "misfire_cap": 100, "misfire_grace_seconds": 1, "job": hook(&sink.url) }),
    )
    .await;
    let (quiet_id, burst_id) = (quiet["id"].as_str().unwrap(), burst["id"].as_str().unwrap());
    tokio::time::sleep(Duration::from_secs(3)).await;
    for id in [quiet_id, burst_id] {
        let paused = post_ok(&api, &key, &format!("/v1/schedules/{id}/pause")).await;
        assert_eq!(paused["paused"], true);
    }
    let before: Vec<usize> = vec![history(&api, &key, quiet_id).await.len(), history(&api, &key, burst_id).await.len()];
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(history(&api, &key, quiet_id).await.len(), before[0], "a paused schedule fired");
    assert_eq!(history(&api, &key, burst_id).await.len(), before[1], "a paused schedule fired");

    let resumed_at = Utc::now();
    for id in [quiet_id, burst_id] {
        assert_eq!(post_ok(&api, &key, &format!("/v1/schedules/{id}/resume")).await["paused"], false);
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Fired since the resume, for times up to now (not those stored ahead).
    let checked_at = Utc::now();
    let after_resume = |fires: Vec<Value>| -> Vec<Value> {
        fires
            .into_iter()
            .filter(|f| time(&f["fired_at"]) >= resumed_at - chrono::Duration::milliseconds(50) && time(&f["fire_at"]) <= checked_at)
            .collect()
    };
    let quiet_fires = after_resume(history(&api, &key, quiet_id).await);
    assert!((1..=4).contains(&quiet_fires.len()), "{quiet_fires:?}");
    assert!(quiet_fires.iter().all(|f| f["outcome"] == "submitted" && time(&f["fire_at"]) >= resumed_at - chrono::Duration::seconds(1)));
    let burst_fires = after_resume(history(&api, &key, burst_id).await);
    let caught_up = burst_fires.iter().filter(|f| time(&f["fire_at"]) < resumed_at - chrono::Duration::seconds(1)).count();
    assert!(caught_up >= 5, "run_all fires what passed while paused: {burst_fires:?}");
}

#[tokio::test]
async fn fires_count_against_the_tenants_job_quota() {
    let env = TestEnv::new("sched-quota").await;
    let key = env.create_key("small").await;
    env.sql_exec("UPDATE tenants SET jobs_per_day = 3").await;
    let api = env.start_api().await;
    let sink = Sink::start().await;
    let _worker = env.start_worker_with(&[("PEYK_QUEUES", "webhook")]).await;
    let schedule = create(&api, &key, json!({ "name": "q", "every_seconds": 1, "job": hook(&sink.url) })).await;
    let id = schedule["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    post_ok(&api, &key, &format!("/v1/schedules/{id}/pause")).await;
    let fires = history(&api, &key, id).await;
    assert_eq!(submitted(&fires).len(), 3, "{fires:?}");
    assert!(fires.iter().filter(|f| f["outcome"] == "quota_exceeded").count() >= 2, "{fires:?}");
    assert!(fires.iter().filter(|f| f["outcome"] == "quota_exceeded").all(|f| f["job_id"].is_null()));
    // A manual trigger past the quota is refused like any submission.
    let (status, refused) = api.post(&format!("/v1/schedules/{id}/trigger"), &key, &json!({})).await;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(refused["error"]["details"]["quota"], "jobs_per_day");
}

#[tokio::test]
async fn persian_calendar_next_runs_across_esfand_of_a_common_and_a_leap_year() {
    let env = TestEnv::new("sched-persian").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    // The 1st of every Persian month at 09:00 Tehran, from 1407-11-01 (2029-01-20): across
    // Esfand 1407 (29 days) and 1408 (30 days, a leap year).
    let monthly = create(
        &api,
        &key,
        json!({ "name": "invoices", "cron": "0 9 1 * *", "calendar": "persian", "start_at": "2029-01-20T00:00:00Z",
                "job": hook("https://clinic.example/invoices") }),
    )
    .await;
    let (status, view) = api.get(&format!("/v1/schedules/{}?next_runs=15", monthly["id"].as_str().unwrap()), &key).await;
    assert_eq!(status, 200, "{view}");
    let runs = view["next_runs"].as_array().unwrap();
    let dates: Vec<&str> = runs.iter().map(|r| r["persian_date"].as_str().unwrap()).collect();
    assert_eq!(dates[..4], ["1407-11-01", "1407-12-01", "1408-01-01", "1408-02-01"]);
    assert_eq!(dates[13..], ["1408-12-01", "1409-01-01"]);
    assert!(runs.iter().all(|r| r["local"].as_str().unwrap().ends_with("T09:00:00+03:30")), "{runs:?}");
    // Month lengths from the gaps between the 1sts: Bahman 30, Esfand 1407 29, six of 31,
    // five of 30, Esfand 1408 30 (leap), Farvardin 31.
    let days: Vec<i64> = runs.windows(2).map(|w| (time(&w[1]["at"]) - time(&w[0]["at"])).num_days()).collect();
    assert_eq!(days, [30, 29, 31, 31, 31, 31, 31, 31, 30, 30, 30, 30, 30, 30]);
    // Nowruz 1408 is 20 March 2029 at 00:00 Tehran, 1409 is 21 March 2030.
    let nowruz = create(
        &api,
        &key,
        json!({ "name": "nowruz", "cron": "0 0 1 1 *", "calendar": "persian", "start_at": "2029-01-01T00:00:00Z",
                "job": hook("https://clinic.example/nowruz") }),
    )
    .await;
    let at: Vec<&str> = nowruz["next_runs"].as_array().unwrap().iter().take(2).map(|r| r["local"].as_str().unwrap()).collect();
    assert_eq!(at, ["2029-03-20T00:00:00+03:30", "2030-03-21T00:00:00+03:30"]);
    // `L`: the last day of Esfand, 29 in a common year, 30 in a leap one.
    let last = create(
        &api,
        &key,
        json!({ "name": "year-end", "cron": "0 12 L 12 *", "calendar": "persian", "start_at": "2029-01-01T00:00:00Z",
                "job": hook("https://clinic.example/year-end") }),
    )
    .await;
    let dates: Vec<&str> = last["next_runs"].as_array().unwrap().iter().take(2).map(|r| r["persian_date"].as_str().unwrap()).collect();
    assert_eq!(dates, ["1407-12-29", "1408-12-30"]);
}

#[tokio::test]
async fn a_berlin_schedule_across_daylight_saving_changes() {
    let env = TestEnv::new("sched-dst").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let local = |schedule: &Value| -> Vec<String> {
        schedule["next_runs"].as_array().unwrap().iter().take(3).map(|r| r["local"].as_str().unwrap().to_string()).collect()
    };
    // 28 March 2027: 02:00 → 03:00. The skipped 02:30 fires right after the jump.
    let spring = create(
        &api,
        &key,
        json!({ "name": "spring", "cron": "30 2 * * *", "timezone": "Europe/Berlin", "start_at": "2027-03-27T00:00:00Z",
                "job": hook("https://clinic.example/a") }),
    )
    .await;
    assert_eq!(local(&spring), ["2027-03-27T02:30:00+01:00", "2027-03-28T03:00:00+02:00", "2027-03-29T02:30:00+02:00"]);
    // 31 October 2027: 03:00 → 02:00. The repeated 02:30 fires once.
    let fall = create(
        &api,
        &key,
        json!({ "name": "fall", "cron": "30 2 * * *", "timezone": "Europe/Berlin", "start_at": "2027-10-30T00:00:00Z",
                "job": hook("https://clinic.example/b") }),
    )
    .await;
    assert_eq!(local(&fall), ["2027-10-30T02:30:00+02:00", "2027-10-31T02:30:00+02:00", "2027-11-01T02:30:00+01:00"]);
    let utc: Vec<&str> = fall["next_runs"].as_array().unwrap().iter().take(3).map(|r| r["at"].as_str().unwrap()).collect();
    assert_eq!(utc, ["2027-10-30T00:30:00Z", "2027-10-31T00:30:00Z", "2027-11-01T01:30:00Z"]);
}

#[tokio::test]
async fn every_invalid_schedule_is_refused_naming_its_field() {
    let env = TestEnv::new("sched-invalid").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let job = hook("https://clinic.example/r");
    let with = |changes: Value| -> Value {
        let mut body = json!({ "name": "r", "cron": "0 9 * * *", "job": job });
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    };
    let cases = [
        (with(json!({ "cron": "0 25 * * *" })), "cron", "field 2 (hour)"),
        (with(json!({ "cron": "0 9 * * * * *" })), "cron", "7 fields"),
        (with(json!({ "cron": "0 0 31 2 *" })), "cron", "never fires"),
        (with(json!({ "cron": "0 0 15W * *", "calendar": "persian" })), "cron", "Persian"),
        (with(json!({ "timezone": "Mars/Olympus_Mons" })), "timezone", "IANA"),
        (with(json!({ "cron": null, "every_seconds": 0 })), "every_seconds", "at least 1"),
        (with(json!({ "every_seconds": 60 })), "cron", "either"),
        (with(json!({ "cron": null })), "cron", "either"),
        (with(json!({ "start_at": "2030-01-02T00:00:00Z", "end_at": "2030-01-01T00:00:00Z" })), "end_at", "after start_at"),
        (with(json!({ "end_at": "2020-01-01T00:00:00Z" })), "end_at", "past"),
        (with(json!({ "calendar": "julian" })), "calendar", "persian"),
        (with(json!({ "overlap": "sometimes" })), "overlap", "queue_one"),
        (with(json!({ "misfire": "later" })), "misfire", "run_all"),
        (with(json!({ "misfire_cap": 0 })), "misfire_cap", "1 and 1000"),
        (with(json!({ "name": "" })), "name", "1 to 200"),
        (with(json!({ "job": null })), "job", "either"),
        (with(json!({ "job": { "type": "webhook", "payload": { "body": {} } } })), "job.payload", "missing field `url`"),
        (with(json!({ "job": { "type": "teleport", "payload": {} } })), "job.type", "unknown"),
        (
            with(json!({ "job": { "type": "webhook", "payload": { "url": "https://a.example" }, "priority": 11 } })),
            "job.priority",
            "0 and 10",
        ),
        (with(json!({ "job": null, "pipeline": { "steps": [{ "type": "teleport", "payload": {} }] } })), "pipeline.steps[0].type", ""),
        (with(json!({ "colour": "blue" })), "colour", "unknown field"),
    ];
    for (body, field, problem) in cases {
        let (status, error) = api.post("/v1/schedules", &key, &body).await;
        assert_eq!(status, 422, "{body}: {error}");
        let errors = error["error"]["details"]["errors"].as_array().unwrap_or_else(|| panic!("{error}"));
        assert!(
            errors.iter().any(|e| e["field"] == field && e["problem"].as_str().unwrap().contains(problem)),
            "{body}: expected {field} ({problem}), got {error}"
        );
    }
    // A name is unique per tenant.
    create(&api, &key, with(json!({}))).await;
    let (status, taken) = api.post("/v1/schedules", &key, &with(json!({}))).await;
    assert_eq!(status, 409, "{taken}");
    assert_eq!(taken["error"]["details"]["errors"][0]["field"], "name");
    // Query parameters too.
    let (status, _) = api.get("/v1/schedules?limit=0", &key).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn schedules_are_edited_triggered_listed_and_deleted_within_their_tenant() {
    let env = TestEnv::new("sched-crud").await;
    let key = env.create_key("clinic").await;
    let other = env.create_key("shop").await;
    let api = env.start_api().await;
    let sink = Sink::start().await;
    let _worker = env.start_worker_with(&[("PEYK_QUEUES", "webhook")]).await;
    let mut job = hook(&sink.url);
    job["metadata"] = json!({ "report": "daily" });
    let schedule = create(&api, &key, json!({ "name": "daily", "cron": "0 9 * * *", "job": job })).await;
    let id = schedule["id"].as_str().unwrap();
    assert_eq!(schedule["timezone"], "Asia/Tehran");
    assert_eq!(schedule["misfire"], "run_once");
    assert_eq!(schedule["next_runs"].as_array().unwrap().len(), 5);
    assert!(schedule["next_runs"][0]["local"].as_str().unwrap().ends_with("T09:00:00+03:30"));

    // Another tenant sees nothing of it.
    for path in [format!("/v1/schedules/{id}"), format!("/v1/schedules/{id}/history")] {
        assert_eq!(api.get(&path, &other).await.0, 404);
    }
    assert_eq!(api.post(&format!("/v1/schedules/{id}/trigger"), &other, &json!({})).await.0, 404);
    assert_eq!(api.get("/v1/schedules", &other).await.1["data"].as_array().unwrap().len(), 0);

    // Run now, once: a job carrying the schedule, recorded as a manual fire.
    let started = Instant::now();
    let triggered = post_ok(&api, &key, &format!("/v1/schedules/{id}/trigger")).await;
    assert_eq!(triggered["fire"]["manual"], true);
    assert_eq!(triggered["job"]["schedule_id"], id);
    assert_eq!(triggered["job"]["metadata"], json!({ "report": "daily" }), "a fire's job carries the template's metadata");
    sink.wait_for(1, Duration::from_secs(20)).await;
    assert!(started.elapsed() < Duration::from_secs(20));
    let (_, got) = api.get(&format!("/v1/schedules/{id}"), &key).await;
    assert_eq!(got["history"][0]["job_id"], triggered["job"]["id"], "{got}");

    // A merge patch: the interval replaces the cron expression; the name changes.
    let (status, patched) = api
        .request(
            reqwest::Method::PATCH,
            &format!("/v1/schedules/{id}"),
            Some(&key),
            Some(&json!({ "every_seconds": 3600, "name": "hourly" })),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["name"], "hourly");
    assert!(patched["cron"].is_null() && patched["every_seconds"] == 3600, "{patched}");
    // An invalid patch changes nothing.
    let (status, _) =
        api.request(reqwest::Method::PATCH, &format!("/v1/schedules/{id}"), Some(&key), Some(&json!({ "timezone": "Nowhere/Else" }))).await;
    assert_eq!(status, 422);
    assert_eq!(api.get(&format!("/v1/schedules/{id}"), &key).await.1["timezone"], "Asia/Tehran");

    // Pages.
    for n in 0..3 {
        create(&api, &key, json!({ "name": format!("extra-{n}"), "cron": "0 9 * * *", "job": hook(&sink.url) })).await;
    }
    let (_, first) = api.get("/v1/schedules?limit=3", &key).await;
    assert_eq!(first["data"].as_array().unwrap().len(), 3);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = api.get(&format!("/v1/schedules?limit=3&cursor={cursor}"), &key).await;
    assert_eq!(second["data"][0]["name"], "hourly");

    assert_eq!(api.request(reqwest::Method::DELETE, &format!("/v1/schedules/{id}"), Some(&key), None).await.0, 204);
    assert_eq!(api.get(&format!("/v1/schedules/{id}"), &key).await.0, 404);
    // Its job stays.
    assert_eq!(api.get(&format!("/v1/jobs/{}", triggered["job"]["id"].as_str().unwrap()), &key).await.0, 200);
}
