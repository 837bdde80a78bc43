//! What a running job shows as it goes — a transcription's segments as
//! they are decoded — for `GET /v1/jobs/{id}/events`: one Redis stream per
//! job, `{prefix}:live:{job_id}`. Entry ids are the events' ids, so a
//! client that reconnects with `Last-Event-ID` reads on from the entry after
//! it, with nothing lost or repeated.
//!
//! The stream is a view, not the truth: the job's record holds the result.
//! It holds what the record holds (a transcript's text), so it lives no
//! longer than a follower needs it: [`KEEP_AFTER_END`] once the attempt
//! ends, [`KEEP_WHILE_RUNNING`] after its last entry while it runs (an
//! attempt that never ends: a killed worker), and not at all once the job
//! is erased (`DELETE /v1/jobs/{id}`). It is capped ([`MAX_ENTRIES`]); a
//! publish that fails costs the live view, never the job.

use std::time::Duration;

use redis::streams::StreamRangeReply;
use redis::Value;
use uuid::Uuid;

use super::{Queue, QueueError};

/// A running attempt's stream is dropped this long after its last entry.
pub const KEEP_WHILE_RUNNING: Duration = Duration::from_secs(3600);
/// An ended attempt's stream is dropped this long after the end: time for
/// a follower to reconnect and read the rest.
pub const KEEP_AFTER_END: Duration = Duration::from_secs(600);
/// At most this many entries per job (a 10-hour recording has ~6,000
/// segments); older ones go first.
pub const MAX_ENTRIES: usize = 20_000;

/// One published event.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveEvent {
    /// The stream entry id (`1733300000000-0`): the SSE event id.
    pub id: String,
    /// What happened: `attempt` (a new attempt starts; what earlier ones
    /// published is void), `segment`…
    pub kind: String,
    /// Its JSON.
    pub data: String,
}

impl Queue {
    fn live_key(&self, job_id: Uuid) -> String {
        format!("{}:live:{job_id}", self.prefix)
    }

    /// Appends an event to the job's stream; answers its id.
    pub async fn publish_live(&self, job_id: Uuid, kind: &str, data: &str) -> Result<String, QueueError> {
        let key = self.live_key(job_id);
        let mut conn = self.conn.clone();
        let (id,): (String,) = redis::pipe()
            .cmd("XADD")
            .arg(&key)
            .arg("MAXLEN")
            .arg("~")
            .arg(MAX_ENTRIES)
            .arg("*")
            .arg("kind")
            .arg(kind)
            .arg("data")
            .arg(data)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(KEEP_WHILE_RUNNING.as_secs())
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(id)
    }

    /// The attempt has ended: the stream goes [`KEEP_AFTER_END`] from now.
    pub async fn end_live(&self, job_id: Uuid) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("EXPIRE").arg(self.live_key(job_id)).arg(KEEP_AFTER_END.as_secs()).query_async(&mut conn).await?;
        Ok(())
    }

    /// The job is erased: so is what it published.
    pub async fn drop_live(&self, job_id: Uuid) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("DEL").arg(self.live_key(job_id)).query_async(&mut conn).await?;
        Ok(())
    }

    /// Up to `count` events after event `after` (`None`: from the first).
    pub async fn read_live(&self, job_id: Uuid, after: Option<&str>, count: usize) -> Result<Vec<LiveEvent>, QueueError> {
        let mut conn = self.conn.clone();
        let start = after.map_or_else(|| "-".to_string(), |id| format!("({id}"));
        let reply: StreamRangeReply =
            redis::cmd("XRANGE").arg(self.live_key(job_id)).arg(start).arg("+").arg("COUNT").arg(count).query_async(&mut conn).await?;
        Ok(reply
            .ids
            .into_iter()
            .map(|entry| {
                let field = |name: &str| match entry.map.get(name) {
                    Some(Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
                    _ => String::new(),
                };
                LiveEvent { kind: field("kind"), data: field("data"), id: entry.id }
            })
            .collect())
    }
}

/// Whether `id` is a stream entry id (`MILLISECONDS-SEQUENCE`), as a
/// `Last-Event-ID` header must be before it reaches Redis.
pub fn is_event_id(id: &str) -> bool {
    match id.split_once('-') {
        Some((ms, seq)) => {
            !ms.is_empty()
                && !seq.is_empty()
                && ms.len() <= 20
                && seq.len() <= 20
                && (ms.bytes().chain(seq.bytes())).all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_stream_ids_only() {
        assert!(is_event_id("1733300000000-0"));
        assert!(is_event_id("0-1"));
        for bad in ["", "-", "12", "12-", "-3", "1-2-3", "a-1", "1-b", "(1-0", "+", "99999999999999999999999-0"] {
            assert!(!is_event_id(bad), "{bad}");
        }
    }
}
