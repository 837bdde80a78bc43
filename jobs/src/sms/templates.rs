//! Kavenegar templates known not to exist. Templates live in the
//! operator's Kavenegar panel, so Peyk cannot list them; but once Kavenegar
//! answers 424 ("template not found") for a name, the API can refuse the
//! next OTPs with that name at submission (422 naming `payload.template`)
//! instead of accepting them and failing each half a second later.
//!
//! The memory is short ([`REMEMBER`]): a template approved in the panel
//! meanwhile is accepted again within minutes. One Kavenegar account
//! serves every tenant, so the memory is shared too.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::AsyncCommands;

pub const REMEMBER: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct MissingTemplates {
    prefix: String,
}

impl MissingTemplates {
    pub fn new(redis_prefix: &str) -> Self {
        Self { prefix: format!("{redis_prefix}:sms:missing_template") }
    }

    fn key(&self, template: &str) -> String {
        format!("{}:{template}", self.prefix)
    }

    /// Kavenegar said `template` does not exist (now).
    pub async fn remember(&self, redis: &mut ConnectionManager, template: &str) -> redis::RedisResult<()> {
        redis.set_ex(self.key(template), chrono::Utc::now().to_rfc3339(), REMEMBER.as_secs()).await
    }

    /// When Kavenegar last said `template` does not exist, within [`REMEMBER`].
    pub async fn missing_since(&self, redis: &mut ConnectionManager, template: &str) -> redis::RedisResult<Option<String>> {
        redis.get(self.key(template)).await
    }
}
