//! Uploads (`POST /v1/files`, `/v1/audio/*`): streamed through the API to
//! the file store, at most `PEYK_MAX_CONCURRENT_UPLOADS` at once per
//! process, the others waiting unread and, after `PEYK_UPLOAD_WAIT_SECONDS`,
//! refused with 503 `uploads_busy` and `Retry-After`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use peyk_tests::TestEnv;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

const MIB: usize = 1024 * 1024;
const BOUNDARY: &str = "peyk-files-test-7d1c0b";

/// The stored files of a test's API (up to 2 GiB here), removed when the
/// test ends, also when it fails.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What comes before and after the file's bytes in the form.
fn form_head(name: &str) -> Vec<u8> {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes()
}

fn form_tail() -> Vec<u8> {
    format!("\r\n--{BOUNDARY}--\r\n").into_bytes()
}

/// A megabyte of noise (nothing to compress, no audio container), the same
/// for every chunk but its first 16 bytes: which upload, which chunk.
fn chunk(noise: &[u8], upload: u64, index: u64) -> Vec<u8> {
    let mut chunk = noise.to_vec();
    chunk[..8].copy_from_slice(&upload.to_le_bytes());
    chunk[8..16].copy_from_slice(&index.to_le_bytes());
    chunk
}

fn noise() -> Arc<Vec<u8>> {
    Arc::new((0..MIB as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A form with a `file` of `mib` MiB, made one chunk at a time as the client
/// sends it (the test never holds an upload whole), and the file's sha256,
/// known once the last chunk has been made.
fn generated_form(noise: Arc<Vec<u8>>, upload: u64, mib: u64) -> (reqwest::Body, oneshot::Receiver<String>) {
    let (hash_tx, hash_rx) = oneshot::channel();
    let head = form_head(&format!("blob-{upload}.bin"));
    // (next chunk, hash so far, where the hash goes)
    let state = (0u64, Sha256::new(), Some(hash_tx));
    let body = futures::stream::once(async move { Ok::<_, std::io::Error>(head) }).chain(futures::stream::unfold(
        state,
        move |(index, mut hash, mut hash_tx)| {
            let noise = noise.clone();
            async move {
                if index < mib {
                    let chunk = chunk(&noise, upload, index);
                    hash.update(&chunk);
                    Some((Ok(chunk), (index + 1, hash, hash_tx)))
                } else {
                    let tx = hash_tx.take()?;
                    let _ = tx.send(hex(&hash.clone().finalize()));
                    Some((Ok(form_tail()), (index + 1, hash, None)))
                }
            }
        },
    ));
    (reqwest::Body::wrap_stream(body), hash_rx)
}

fn upload_request(client: &reqwest::Client, url: &str, path: &str, key: &str, body: reqwest::Body) -> reqwest::RequestBuilder {
    client
        .post(format!("{url}{path}"))
        .bearer_auth(key)
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(body)
}

/// A client without the harness's 30 s limit: twenty 100 MiB uploads take
/// longer than that on a slow machine.
fn patient_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(300)).build().unwrap()
}

/// A line of `/proc/PID/status` in KiB (e.g. `RssAnon`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':')).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Upload spools the process has open: anonymous temporary files, which
/// `/proc/PID/fd` shows as `/tmp/#INODE (deleted)`.
fn open_spools(pid: u32) -> u64 {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok()).filter(|target| target.to_string_lossy().ends_with(" (deleted)")).count()
        as u64
}

/// Twenty 100 MiB uploads at once: all stored whole and intact, at most
/// `PEYK_MAX_CONCURRENT_UPLOADS` (8) read at a time, and the API's own
/// memory stays flat.
#[tokio::test]
async fn twenty_large_uploads_at_once_keep_the_apis_memory_flat() {
    const UPLOADS: u64 = 20;
    const UPLOAD_MIB: u64 = 100;
    const PLACES: u64 = 8;
    let env = TestEnv::new("uploads").await;
    let _stored = RemoveOnDrop(env.files_dir());
    let key = env.create_key("archive").await;
    // The defaults: PEYK_MAX_UPLOAD_BYTES (200 MiB) takes 100 MiB, and
    // PEYK_MAX_CONCURRENT_UPLOADS is 8. PEYK_UPLOAD_WAIT_SECONDS (30) is
    // raised: on a slow machine the last uploads may wait longer than that.
    let api = env.start_api_with(&[("PEYK_UPLOAD_WAIT_SECONDS", "240")]).await;
    let pid = api.child.id().unwrap();
    // Warm up (first-request allocations, connection pools), then measure.
    api.upload(&key, "small.bin", vec![7; 1024]).await;
    let baseline = status_kib(pid, "RssAnon");

    // RssAnon, not VmRSS: the spools are read through memory maps, whose
    // file-backed pages count in RSS (RssFile) but are page cache the kernel
    // drops and re-reads as it needs, not memory the process owns.
    let peak_anon = Arc::new(AtomicU64::new(baseline));
    let peak_file = Arc::new(AtomicU64::new(0));
    let peak_spools = Arc::new(AtomicU64::new(0));
    let sampler = tokio::spawn({
        let (peak_anon, peak_file, peak_spools) = (peak_anon.clone(), peak_file.clone(), peak_spools.clone());
        async move {
            loop {
                peak_anon.fetch_max(status_kib(pid, "RssAnon"), Ordering::Relaxed);
                peak_file.fetch_max(status_kib(pid, "RssFile"), Ordering::Relaxed);
                peak_spools.fetch_max(open_spools(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });

    let client = patient_client();
    let noise = noise();
    let started = Instant::now();
    let uploads = (0..UPLOADS).map(|upload| {
        let (body, hash) = generated_form(noise.clone(), upload, UPLOAD_MIB);
        let request = upload_request(&client, &api.url, "/v1/files", &key, body);
        async move {
            let response = request.send().await.expect("API answers");
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            (upload, status, answer, hash.await.expect("the whole body was sent"))
        }
    });
    let answers = futures::future::join_all(uploads).await;
    let took = started.elapsed();
    sampler.abort();

    for (upload, status, answer, sha256) in &answers {
        assert_eq!(*status, 201, "upload {upload}: {answer}");
        assert_eq!(answer["size_bytes"], UPLOAD_MIB * MIB as u64, "upload {upload}: {answer}");
        assert_eq!(answer["sha256"], *sha256, "upload {upload}: {answer}");
    }
    let mib = |kib: u64| kib / 1024;
    let (peak_anon, peak_file, peak_spools) =
        (peak_anon.load(Ordering::Relaxed), peak_file.load(Ordering::Relaxed), peak_spools.load(Ordering::Relaxed));
    eprintln!(
        "{UPLOADS} uploads of {UPLOAD_MIB} MiB in {:.1} s: RssAnon {} MiB before, {} MiB at most (+{} MiB); RssFile at most {} MiB; \
         at most {peak_spools} spools open",
        took.as_secs_f64(),
        mib(baseline),
        mib(peak_anon),
        mib(peak_anon - baseline),
        mib(peak_file),
    );
    assert!(peak_spools <= PLACES, "{peak_spools} uploads were read at once; PEYK_MAX_CONCURRENT_UPLOADS is {PLACES}");
    assert!(peak_spools >= 2, "the uploads were not read in parallel ({peak_spools} at most)");
    // Measured on a 2-core machine (nine runs, 12 to 22 s): +69 to +107 MiB
    // over a 22 MiB baseline, RssFile up to 694 MiB; +63 MiB with 2 places,
    // +123 MiB with 20. Each upload being stored holds up to three
    // 5 MiB parts for the store and the spool's 2 MiB write buffer, so eight
    // at once stay near 140 MiB even when they all store at the same moment;
    // a regression that held uploads in memory would need 800 MiB.
    let grown = mib(peak_anon - baseline);
    assert!(grown < 200, "{UPLOADS} uploads of {UPLOAD_MIB} MiB grew the API's anonymous memory by {grown} MiB");
}

/// With one place, a second upload waits for it without being read and,
/// after PEYK_UPLOAD_WAIT_SECONDS, is refused with 503 `uploads_busy` and
/// `Retry-After` (the OpenAI endpoints too), while the first, held open by
/// its client, is stored once it ends; then the place is free again.
#[tokio::test]
async fn an_upload_waiting_too_long_for_a_place_gets_503_uploads_busy() {
    let env = TestEnv::new("uploads-busy").await;
    let _stored = RemoveOnDrop(env.files_dir());
    let key = env.create_key("archive").await;
    let api = env.start_api_with(&[("PEYK_MAX_CONCURRENT_UPLOADS", "1"), ("PEYK_UPLOAD_WAIT_SECONDS", "0.5")]).await;
    let pid = api.child.id().unwrap();
    let client = patient_client();
    let noise = noise();

    // The first upload: its form's head and 2 MiB, then nothing until the test says so.
    let (chunks, receiver) = mpsc::channel::<Vec<u8>>(4);
    let body = futures::stream::unfold(receiver, |mut receiver| async move {
        let chunk = receiver.recv().await?;
        Some((Ok::<_, std::io::Error>(chunk), receiver))
    });
    let first = tokio::spawn(upload_request(&client, &api.url, "/v1/files", &key, reqwest::Body::wrap_stream(body)).send());
    let mut hash = Sha256::new();
    chunks.send(form_head("held.bin")).await.unwrap();
    for index in 0..2 {
        let chunk = chunk(&noise, 1, index);
        hash.update(&chunk);
        chunks.send(chunk).await.unwrap();
    }
    // It holds the place once the API spools it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_spools(pid) == 0 {
        assert!(Instant::now() < deadline, "the first upload was never spooled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A second upload, whole, while the first is open: refused after the wait.
    let mut form = form_head("second.bin");
    form.extend(chunk(&noise, 2, 0));
    form.extend(form_tail());
    let asked = Instant::now();
    let response = upload_request(&client, &api.url, "/v1/files", &key, form.into()).send().await.expect("API answers");
    let waited = asked.elapsed();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("5"));
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "uploads_busy", "{answer}");
    assert!(waited >= Duration::from_millis(450), "refused after {waited:?}, before PEYK_UPLOAD_WAIT_SECONDS");
    assert_eq!(open_spools(pid), 1, "only the first upload is read");
    // The OpenAI endpoint shares the places.
    let (status, answer, _) =
        api.upload_form("/v1/audio/transcriptions", &key, Some(("note.wav", vec![1; 1024])), &[("model", "whisper-1")]).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (503, Some("uploads_busy")), "{answer}");

    // The first upload ends and is stored whole.
    for index in 2..4 {
        let chunk = chunk(&noise, 1, index);
        hash.update(&chunk);
        chunks.send(chunk).await.unwrap();
    }
    chunks.send(form_tail()).await.unwrap();
    drop(chunks);
    let response = first.await.unwrap().expect("API answers");
    assert_eq!(response.status(), 201);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["size_bytes"], 4 * MIB, "{answer}");
    assert_eq!(answer["sha256"], hex(&hash.finalize()), "{answer}");

    // The place is free again.
    api.upload(&key, "after.bin", vec![7; 1024]).await;
}
