//! A Server-Sent Events reader for the tests: reads a `text/event-stream`
//! response event by event, as a browser's `EventSource` would, so that a
//! test can stop in the middle (a client that disconnects) and resume.

use futures::StreamExt;

/// One event: its `id` (absent when it carries none), `event` name and `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("event data is not JSON ({e}): {}", self.data))
    }
}

pub struct SseReader {
    chunks: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        Self { chunks: response.bytes_stream().boxed(), buffer: String::new() }
    }

    /// The next event; `None` when the server ended the stream. Comments
    /// (keep-alives) are skipped.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent { id: None, event: "message".into(), data: String::new() };
                let mut fields = 0;
                for line in block.lines() {
                    let (name, value) = line.split_once(':').map_or((line, ""), |(n, v)| (n, v.strip_prefix(' ').unwrap_or(v)));
                    match name {
                        "id" => event.id = Some(value.to_string()),
                        "event" => event.event = value.to_string(),
                        "data" if event.data.is_empty() => event.data = value.to_string(),
                        "data" => event.data = format!("{}\n{value}", event.data),
                        _ => continue,
                    }
                    fields += 1;
                }
                if fields > 0 {
                    return Some(event);
                }
                continue;
            }
            let chunk = self.chunks.next().await?.ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        }
    }
}
