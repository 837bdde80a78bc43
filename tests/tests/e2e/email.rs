//! Email delivery end to end: the real API and worker, a real SMTP server
//! (aiosmtpd, `tests/smtp_sink.py`), and the received MIME messages parsed
//! by an independent parser (mail-parser).

use std::time::Duration;

use mail_parser::{Message, MessageParser, MimeHeaders};
use peyk_tests::{Api, SmtpSink, TestEnv, Worker};
use serde_json::{json, Value};

const FROM: &str = "Peyk Clinic <noreply@clinic.test>";

/// A PDF-like file: enough for a content type and a byte comparison.
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

struct World {
    env: TestEnv,
    key: String,
    api: Api,
    sink: SmtpSink,
    worker: Worker,
}

async fn world(name: &str) -> World {
    let env = TestEnv::new(name).await;
    let key = env.create_key("clinic").await;
    env.cli(&["set-limits", "--tenant", "clinic", "--sender-domain", "clinic.test"]).await;
    let api = env.start_api().await;
    let sink = SmtpSink::start(name).await;
    let url = sink.url();
    let worker = env.start_worker_with(&[("PEYK_QUEUES", "email"), ("PEYK_SMTP_URL", &url), ("PEYK_EMAIL_FROM", FROM)]).await;
    World { env, key, api, sink, worker }
}

fn email(payload: Value) -> Value {
    json!({ "type": "email", "payload": payload })
}

fn parse(raw: &[u8]) -> Message<'_> {
    MessageParser::default().parse(raw).expect("a parsable MIME message")
}

/// The text of the one part with this content type.
fn part_text(message: &Message<'_>, subtype: &str) -> String {
    let parts: Vec<_> = message.parts.iter().filter(|p| p.is_content_type("text", subtype) && p.attachment_name().is_none()).collect();
    assert_eq!(parts.len(), 1, "one text/{subtype} part");
    parts[0].text_contents().unwrap().to_string()
}

fn first_address<'a>(address: Option<&'a mail_parser::Address<'_>>) -> &'a str {
    address.and_then(|a| a.first()).and_then(|a| a.address()).unwrap_or_default()
}

#[tokio::test]
async fn a_templated_persian_email_arrives_right_to_left_with_its_attachment() {
    let w = world("mail-fa").await;
    let file_id = w.api.upload(&w.key, "گزارش-آزمایش.pdf", PDF.to_vec()).await;
    let id = w
        .api
        .submit(
            &w.key,
            &email(json!({
                "to": ["مریم رضایی <maryam@example.com>"],
                "template": "appointment-reminder",
                "language": "fa",
                "variables": {"name": "مریم", "date": "۱۴۰۵/۰۹/۰۱", "time": "۱۰:۳۰", "clinic": "درمانگاه آفتاب", "doctor": "دکتر <b>احمدی</b>"},
                "attachments": [{"file_id": file_id, "filename": "report.pdf"}]
            })),
        )
        .await;
    let job = w.api.wait_for_status(&w.key, &id, "succeeded", Duration::from_secs(20)).await;
    let received = w.sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(received.len(), 1);
    let mail = &received[0];
    assert_eq!(mail.mail_from, "noreply@clinic.test");
    assert_eq!(mail.rcpt_tos, ["maryam@example.com"]);

    let message = parse(&mail.raw);
    assert_eq!(first_address(message.from()), "noreply@clinic.test");
    assert_eq!(message.from().unwrap().first().unwrap().name().unwrap(), "Peyk Clinic");
    assert_eq!(first_address(message.to()), "maryam@example.com");
    assert_eq!(message.to().unwrap().first().unwrap().name().unwrap(), "مریم رضایی");
    assert_eq!(message.subject().unwrap(), "یادآوری نوبت درمانگاه آفتاب: ۱۴۰۵/۰۹/۰۱ ساعت ۱۰:۳۰");
    let message_id = job["result"]["message_id"].as_str().unwrap();
    assert_eq!(message_id, format!("<{id}@peyk>"));
    assert_eq!(format!("<{}>", message.message_id().unwrap()), message_id);
    assert_eq!(job["result"]["accepted"], json!(["maryam@example.com"]));
    assert!(job["result"]["latency_ms"].as_f64().unwrap() >= 0.0);

    // multipart/mixed holding multipart/alternative (text, then HTML) and the PDF.
    assert!(message.is_content_type("multipart", "mixed"));
    let text = part_text(&message, "plain");
    assert!(text.contains("مریم") && text.contains("۱۴۰۵/۰۹/۰۱") && text.contains("دکتر <b>احمدی</b>"), "{text}");
    let html = part_text(&message, "html");
    assert!(html.contains("<html dir=\"rtl\" lang=\"fa\">"), "{html}");
    assert!(html.contains("text-align:right"));
    assert!(html.contains("مریم") && html.contains("درمانگاه آفتاب"));
    assert!(html.contains("دکتر &lt;b&gt;احمدی&lt;&#x2f;b&gt;"), "variables are HTML-escaped: {html}");

    let attachments: Vec<_> = message.attachments().collect();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0].attachment_name(), Some("report.pdf"));
    assert!(attachments[0].is_content_type("application", "pdf"));
    assert_eq!(attachments[0].contents(), PDF);

    let metrics = w.env.http.get(format!("{}/metrics", w.worker.metrics_url)).send().await.unwrap().text().await.unwrap();
    let smtp_success = metrics
        .lines()
        .find(|l| l.starts_with("peyk_provider_requests_total{") && l.contains("provider=\"smtp\"") && l.contains("outcome=\"success\""));
    assert_eq!(smtp_success.and_then(|l| l.rsplit(' ').next()), Some("1"), "{metrics}");
    assert!(!metrics.contains("maryam"), "no addresses in metrics");
}

#[tokio::test]
async fn a_raw_english_email_with_cc_bcc_and_reply_to() {
    let w = world("mail-raw").await;
    let id = w
        .api
        .submit(
            &w.key,
            &email(json!({
                "to": ["alice@example.com", "Bob <bob@example.com>"],
                "cc": ["carol@example.com"],
                "bcc": ["audit@example.com"],
                "reply_to": "support@clinic.test",
                "from": "Reports <reports@clinic.test>",
                "subject": "Your results",
                "html": "<p>Hello Alice, your <b>results</b> are ready.</p>",
                "text": "Hello Alice, your results are ready."
            })),
        )
        .await;
    let job = w.api.wait_for_status(&w.key, &id, "succeeded", Duration::from_secs(20)).await;
    let received = w.sink.wait_for(1, Duration::from_secs(5)).await;
    let mail = &received[0];
    assert_eq!(mail.mail_from, "reports@clinic.test");
    let mut rcpt = mail.rcpt_tos.clone();
    rcpt.sort();
    assert_eq!(rcpt, ["alice@example.com", "audit@example.com", "bob@example.com", "carol@example.com"]);
    assert_eq!(job["result"]["accepted"].as_array().unwrap().len(), 4);

    let message = parse(&mail.raw);
    assert_eq!(message.subject(), Some("Your results"));
    assert_eq!(first_address(message.from()), "reports@clinic.test");
    let to: Vec<&str> = message.to().unwrap().iter().filter_map(|a| a.address()).collect();
    assert_eq!(to, ["alice@example.com", "bob@example.com"]);
    assert_eq!(first_address(message.cc()), "carol@example.com");
    assert_eq!(first_address(message.reply_to()), "support@clinic.test");
    assert!(message.bcc().is_none(), "Bcc never appears in the headers");
    assert!(!String::from_utf8_lossy(&mail.raw).contains("audit@example.com"));
    assert!(message.is_content_type("multipart", "alternative"));
    assert_eq!(part_text(&message, "plain").trim_end(), "Hello Alice, your results are ready.");
    let html = part_text(&message, "html");
    assert!(html.contains("<html dir=\"ltr\" lang=\"en\">") && html.contains("your <b>results</b> are ready"), "{html}");
    assert_eq!(format!("<{}>", message.message_id().unwrap()), job["result"]["message_id"].as_str().unwrap());
}

#[tokio::test]
async fn a_tenant_template_overrides_the_builtin_one() {
    let w = world("mail-tpl").await;
    let other_key = w.env.create_key("other-clinic").await;
    let template = json!({
        "language": "en",
        "subject": "Aftab clinic code {{ code }}",
        "html": "<p>Your Aftab code is <strong>{{ code }}</strong>.</p>"
    });
    let (status, stored) = w.api.request(reqwest::Method::PUT, "/v1/email/templates/verify", Some(&w.key), Some(&template)).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["name"], "verify");
    let (status, list) = w.api.get("/v1/email/templates", &w.key).await;
    assert_eq!(status, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(list["builtin"].as_array().unwrap().iter().any(|t| t["name"] == "appointment-reminder"));
    let (_, other_list) = w.api.get("/v1/email/templates", &other_key).await;
    assert_eq!(other_list["data"], json!([]), "templates are per tenant");

    let verify = |to: &str| email(json!({"to": [to], "template": "verify", "language": "en", "variables": {"code": "482913"}}));
    let own = w.api.submit(&w.key, &verify("own@example.com")).await;
    w.api.wait_for_status(&w.key, &own, "succeeded", Duration::from_secs(20)).await;
    let builtin = w.api.submit(&other_key, &verify("other@example.com")).await;
    w.api.wait_for_status(&other_key, &builtin, "succeeded", Duration::from_secs(20)).await;

    let received = w.sink.wait_for(2, Duration::from_secs(5)).await;
    let by_rcpt = |to: &str| received.iter().find(|m| m.rcpt_tos == [to]).unwrap().raw.clone();
    let own_raw = by_rcpt("own@example.com");
    let own_message = parse(&own_raw);
    assert_eq!(own_message.subject(), Some("Aftab clinic code 482913"));
    assert!(part_text(&own_message, "html").contains("Your Aftab code is <strong>482913</strong>."));
    assert_eq!(part_text(&own_message, "plain").trim(), "Your Aftab code is 482913.", "text derived from the HTML");
    let other_raw = by_rcpt("other@example.com");
    assert_eq!(parse(&other_raw).subject(), Some("Your verification code: 482913"));

    // Deleted, the built-in one applies again.
    let (status, _) = w.api.request(reqwest::Method::DELETE, "/v1/email/templates/verify", Some(&w.key), None).await;
    assert_eq!(status, 204);
    let (status, _) = w.api.request(reqwest::Method::DELETE, "/v1/email/templates/verify", Some(&w.key), None).await;
    assert_eq!(status, 404);
    let again = w.api.submit(&w.key, &verify("again@example.com")).await;
    w.api.wait_for_status(&w.key, &again, "succeeded", Duration::from_secs(20)).await;
    let received = w.sink.wait_for(3, Duration::from_secs(5)).await;
    let again_raw = received.iter().find(|m| m.rcpt_tos == ["again@example.com"]).unwrap().raw.clone();
    assert_eq!(parse(&again_raw).subject(), Some("Your verification code: 482913"));

    // Broken templates are refused naming the field.
    let cases = [
        ("verify", json!({"language": "en", "subject": "ok", "html": "<p>{% if code %}never closed</p>"}), "html"),
        ("verify", json!({"language": "en", "subject": "{{ code", "text": "ok"}), "subject"),
        ("verify", json!({"language": "english", "subject": "ok", "text": "ok"}), "language"),
        ("Not A Name", json!({"language": "en", "subject": "ok", "text": "ok"}), "name"),
        ("verify", json!({"language": "en", "subject": "ok"}), "html"),
    ];
    for (name, body, field) in cases {
        let path = format!("/v1/email/templates/{}", name.replace(' ', "%20"));
        let (status, answer) = w.api.request(reqwest::Method::PUT, &path, Some(&w.key), Some(&body)).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["error"]["details"]["errors"][0]["field"], field, "{answer}");
    }
}

#[tokio::test]
async fn smtp_4xx_is_retried_and_5xx_fails_at_once_with_the_reply() {
    let w = world("mail-fail").await;
    let mut temp = email(json!({"to": ["temp-fail@example.com"], "subject": "s", "text": "t"}));
    temp["max_attempts"] = json!(3);
    let temp_id = w.api.submit(&w.key, &temp).await;
    let perm_id = w.api.submit(&w.key, &email(json!({"to": ["perm-fail@example.com"], "subject": "s", "text": "t"}))).await;

    let failed = w.api.wait_for_status(&w.key, &perm_id, "failed", Duration::from_secs(20)).await;
    assert_eq!(failed["attempts"], 1, "{failed}");
    assert_eq!(failed["error"]["code"], "smtp_550");
    let reply = failed["error"]["message"].as_str().unwrap();
    assert!(reply.contains("No such user here"), "the server's reply is kept: {reply}");

    let dead = w.api.wait_for_status(&w.key, &temp_id, "dead", Duration::from_secs(30)).await;
    assert_eq!(dead["attempts"], 3, "a 451 is retried until the attempts run out: {dead}");
    assert_eq!(dead["error"]["code"], "smtp_451");
    let (_, attempts) = w.api.get(&format!("/v1/jobs/{temp_id}/attempts"), &w.key).await;
    let outcomes: Vec<&str> = attempts["data"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "retrying").count(), 2, "{attempts}");
    assert!(w.sink.received().is_empty());
}

#[tokio::test]
async fn an_unreachable_server_is_retried() {
    let env = TestEnv::new("mail-down").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let closed = format!("smtp://127.0.0.1:{}", peyk_tests::free_port());
    let _worker = env.start_worker_with(&[("PEYK_QUEUES", "email"), ("PEYK_SMTP_URL", &closed), ("PEYK_EMAIL_FROM", FROM)]).await;
    let mut job = email(json!({"to": ["a@example.com"], "subject": "s", "text": "t"}));
    job["max_attempts"] = json!(2);
    let id = api.submit(&key, &job).await;
    let dead = api.wait_for_status(&key, &id, "dead", Duration::from_secs(30)).await;
    assert_eq!(dead["attempts"], 2);
    assert_eq!(dead["error"]["code"], "connection_failed", "{dead}");
}

#[tokio::test]
async fn invalid_payloads_are_refused_naming_the_field() {
    let w = world("mail-422").await;
    let cases = [
        (json!({"to": ["not-an-address"], "subject": "s", "text": "t"}), "payload.to.0"),
        (json!({"to": ["a@example.com"], "cc": ["ok@example.com", "a@@b"], "subject": "s", "text": "t"}), "payload.cc.1"),
        (json!({"to": ["a@example.com"], "template": "verify", "subject": "s"}), "payload.subject"),
        (json!({"to": ["a@example.com"], "subject": "s"}), "payload.html"),
        (json!({"to": ["a@example.com"], "template": "verify", "language": "persian"}), "payload.language"),
        (
            json!({"to": ["a@example.com"], "subject": "s", "text": "t", "attachments": [{"file_id": uuid::Uuid::now_v7()}]}),
            "payload.attachments.0.file_id",
        ),
        (json!({"to": ["a@example.com"], "subject": "s", "text": "t", "priority_mail": true}), "payload"),
    ];
    for (payload, field) in cases {
        let (status, answer) = w.api.post("/v1/jobs", &w.key, &email(payload.clone())).await;
        assert_eq!(status, 422, "{payload}: {answer}");
        let fields: Vec<&str> =
            answer["error"]["details"]["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert!(fields.iter().any(|f| f.starts_with(field)), "{payload}: expected {field}, got {fields:?}");
    }
    // Another tenant's file is as unknown as a missing one.
    let other_key = w.env.create_key("other").await;
    let other_file = w.api.upload(&other_key, "x.pdf", PDF.to_vec()).await;
    let (status, answer) = w
        .api
        .post(
            "/v1/jobs",
            &w.key,
            &email(json!({"to": ["a@example.com"], "subject": "s", "text": "t", "attachments": [{"file_id": other_file}]})),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["details"]["errors"][0]["field"], "payload.attachments.0.file_id");

    // Tenant templates live in the database: an unknown name fails at run time, once.
    let id = w.api.submit(&w.key, &email(json!({"to": ["a@example.com"], "template": "no-such-template", "language": "fa"}))).await;
    let failed = w.api.wait_for_status(&w.key, &id, "failed", Duration::from_secs(20)).await;
    assert_eq!(failed["error"]["code"], "unknown_template");
    assert_eq!(failed["attempts"], 1);
}

#[tokio::test]
async fn starttls_and_implicit_tls_with_a_private_ca() {
    let env = TestEnv::new("mail-tls").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let certs = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-mail/tls-certs");
    let (ca, cert, private_key) = peyk_tests::smtp::test_certificates(&certs);
    let (cert, private_key, ca) = (cert.to_str().unwrap(), private_key.to_str().unwrap(), ca.to_str().unwrap());

    // STARTTLS (port 587 style): the server refuses mail before STARTTLS.
    let starttls = SmtpSink::start_with("mail-starttls", &["--tls-cert", cert, "--tls-key", private_key, "--tls", "starttls"]).await;
    // Implicit TLS (port 465 style).
    let implicit = SmtpSink::start_with("mail-implicit", &["--tls-cert", cert, "--tls-key", private_key, "--tls", "implicit"]).await;
    for (sink, url) in [
        (&starttls, format!("smtp://127.0.0.1:{}?tls=required", starttls.port)),
        (&implicit, format!("smtps://127.0.0.1:{}", implicit.port)),
    ] {
        let worker = env
            .start_worker_with(&[("PEYK_QUEUES", "email"), ("PEYK_SMTP_URL", &url), ("PEYK_SMTP_CA_FILE", ca), ("PEYK_EMAIL_FROM", FROM)])
            .await;
        let id = api.submit(&key, &email(json!({"to": ["a@example.com"], "subject": "over TLS", "text": "t"}))).await;
        api.wait_for_status(&key, &id, "succeeded", Duration::from_secs(20)).await;
        let received = sink.wait_for(1, Duration::from_secs(5)).await;
        assert_eq!(parse(&received[0].raw).subject(), Some("over TLS"), "{url}");
        drop(worker);
    }

    // Without the CA the certificate is not trusted: the job does not succeed.
    let _untrusting = env
        .start_worker_with(&[
            ("PEYK_QUEUES", "email"),
            ("PEYK_SMTP_URL", &format!("smtps://127.0.0.1:{}", implicit.port)),
            ("PEYK_EMAIL_FROM", FROM),
        ])
        .await;
    let mut job = email(json!({"to": ["b@example.com"], "subject": "untrusted", "text": "t"}));
    job["max_attempts"] = json!(1);
    let id = api.submit(&key, &job).await;
    let dead = api.wait_for_status(&key, &id, "dead", Duration::from_secs(20)).await;
    assert!(["tls_failed", "connection_failed"].contains(&dead["error"]["code"].as_str().unwrap()), "{dead}");
    assert_eq!(implicit.received().len(), 1);
}

#[tokio::test]
async fn from_is_limited_to_the_tenants_sender_domains_and_recipients_to_its_daily_cap() {
    let env = TestEnv::new("mail-senders").await;
    let key = env.create_key("clinic").await;
    let other = env.create_key("shop").await;
    env.cli(&["set-limits", "--tenant", "clinic", "--sender-domain", "clinic.ir", "--emails-per-day", "3"]).await;
    let api = env.start_api().await;
    let sink = SmtpSink::start("mail-senders").await;
    let url = sink.url();
    let _worker = env.start_worker_with(&[("PEYK_QUEUES", "email"), ("PEYK_SMTP_URL", &url), ("PEYK_EMAIL_FROM", FROM)]).await;
    let mail = |from: Option<&str>, to: &[&str]| {
        let mut payload = json!({ "to": to, "subject": "Hello", "text": "Hello" });
        if let Some(from) = from {
            payload["from"] = json!(from);
        }
        email(payload)
    };

    // Another domain, a subdomain, a tenant without domains: refused, naming the field.
    for (key, from) in [(&key, "Bank Melli <no-reply@bmi.ir>"), (&key, "x@mail.clinic.ir"), (&other, "no-reply@clinic.ir")] {
        let (status, body) = api.post("/v1/jobs", key, &mail(Some(from), &["a@example.com"])).await;
        assert_eq!(status, 422, "{from}: {body}");
        assert_eq!(body["error"]["code"], "sender_not_allowed");
        assert_eq!(body["error"]["details"]["errors"][0]["field"], "payload.from");
    }
    // A pipeline step and a schedule's job are checked the same way.
    let (status, body) = api.post("/v1/pipelines", &key, &json!({ "steps": [mail(Some("a@bmi.ir"), &["a@example.com"])] })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("sender_not_allowed")), "{body}");

    // A job stored while the domain was allowed fails once it no longer is.
    let mut later = mail(Some("no-reply@clinic.ir"), &["e@example.com"]);
    later["delay_seconds"] = json!(2);
    let id = api.submit(&key, &later).await;
    env.cli(&["set-limits", "--tenant", "clinic", "--sender-domain", "none"]).await;
    let job = api.wait_for_status(&key, &id, "failed", Duration::from_secs(20)).await;
    assert_eq!(job["error"]["code"], "sender_not_allowed", "{job}");
    let (status, body) = api.post("/v1/jobs", &key, &mail(Some("no-reply@clinic.ir"), &["e@example.com"])).await;
    assert_eq!(status, 422, "the API reads the domains at each submission: {body}");
    env.cli(&["set-limits", "--tenant", "clinic", "--sender-domain", "clinic.ir"]).await;

    let id = api.submit(&key, &mail(Some("Clinic <No-Reply@Clinic.IR>"), &["a@example.com"])).await;
    api.wait_for_status(&key, &id, "succeeded", Duration::from_secs(20)).await;
    assert_eq!(sink.wait_for(1, Duration::from_secs(5)).await[0].mail_from, "No-Reply@Clinic.IR");
    // Three recipients a day (the failed job's counted): one more passes, then none.
    api.submit(&key, &mail(None, &["b@example.com"])).await;
    let (status, body) = api.post("/v1/jobs", &key, &mail(None, &["c@example.com", "d@example.com"])).await;
    assert_eq!(
        (status, body["error"]["code"].as_str(), body["error"]["details"]["quota"].as_str()),
        (429, Some("quota_exceeded"), Some("emails_per_day")),
        "{body}"
    );
    let (_, usage) = api.get("/v1/usage", &key).await;
    assert_eq!((usage["used"]["emails"].as_i64(), usage["quotas"]["emails_per_day"].as_i64()), (Some(3), Some(3)), "{usage}");
}
