//! Rate limits on SMS, checked by the worker before Kavenegar is called:
//! "at most 1 OTP a minute and 5 an hour to one number", "at most 1,000
//! messages a minute for a tenant".
//!
//! Rules come from `PEYK_SMS_RATE_LIMITS`, comma-separated
//! `SCOPE:KIND:COUNT/SECONDS`: SCOPE is `receptor` (each number, within a
//! tenant) or `tenant`; KIND is `otp` (template `lookup` and voice `call`
//! jobs) or `any`. Each rule is a sliding window kept in Redis as a sorted
//! set of job ids, checked and updated by one Lua script, so concurrent
//! workers cannot both take the last slot. The job id is the member: a retry
//! of a job that was already let through counts once.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;
use uuid::Uuid;

use crate::env::EnvError;

pub const DEFAULT_RULES: &str = "receptor:otp:1/60,receptor:otp:5/3600";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Receptor,
    Tenant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Otp,
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub scope: Scope,
    pub kind: Kind,
    pub limit: u32,
    pub window: Duration,
}

impl Rule {
    fn name(&self, index: usize) -> String {
        format!("r{index}")
    }
}

/// As written in `PEYK_SMS_RATE_LIMITS`: `receptor:otp:1/60`.
impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scope = match self.scope {
            Scope::Receptor => "receptor",
            Scope::Tenant => "tenant",
        };
        let kind = match self.kind {
            Kind::Otp => "otp",
            Kind::Any => "any",
        };
        write!(f, "{scope}:{kind}:{}/{}", self.limit, self.window.as_secs())
    }
}

pub fn parse_rules(text: &str) -> Result<Vec<Rule>, EnvError> {
    let bad = |rule: &str, why: &str| EnvError::new(format!("PEYK_SMS_RATE_LIMITS: `{rule}`: {why} (expected SCOPE:KIND:COUNT/SECONDS)"));
    text.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty() && *r != "none")
        .map(|rule| {
            let mut parts = rule.split(':');
            let (Some(scope), Some(kind), Some(rate), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
                return Err(bad(rule, "three parts"));
            };
            let scope = match scope {
                "receptor" => Scope::Receptor,
                "tenant" => Scope::Tenant,
                _ => return Err(bad(rule, "scope must be receptor or tenant")),
            };
            let kind = match kind {
                "otp" => Kind::Otp,
                "any" => Kind::Any,
                _ => return Err(bad(rule, "kind must be otp or any")),
            };
            let (count, seconds) = rate.split_once('/').ok_or_else(|| bad(rule, "rate must be COUNT/SECONDS"))?;
            let limit: u32 = count.parse().ok().filter(|c| *c > 0).ok_or_else(|| bad(rule, "count must be a positive integer"))?;
            let seconds: u64 = seconds.parse().ok().filter(|s| *s > 0).ok_or_else(|| bad(rule, "seconds must be a positive integer"))?;
            Ok(Rule { scope, kind, limit, window: Duration::from_secs(seconds) })
        })
        .collect()
}

/// Checks every window at once; admits (and records) only if all have room.
const CHECK_LUA: &str = r#"
local now = tonumber(ARGV[1])
local member = ARGV[2]
local wait = 0
local which = 0
for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[1 + 2 * i])
  local limit = tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if not redis.call('ZSCORE', key, member) then
    local count = redis.call('ZCARD', key)
    if count >= limit then
      -- the entry whose expiry brings the count under the limit
      local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
      local w = tonumber(oldest[2]) + window - now
      if w > wait then wait = w; which = i end
    end
  end
end
if wait > 0 then return {wait, which} end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'NX', now, member)
  redis.call('PEXPIRE', key, tonumber(ARGV[1 + 2 * i]))
end
return {0, 0}
"#;

#[derive(Clone)]
pub struct RateLimiter {
    rules: Vec<Rule>,
    prefix: String,
    script: std::sync::Arc<Script>,
}

impl RateLimiter {
    pub fn new(rules: Vec<Rule>, redis_prefix: &str) -> Self {
        Self { rules, prefix: format!("{redis_prefix}:sms:ratelimit"), script: std::sync::Arc::new(Script::new(CHECK_LUA)) }
    }

    /// `Ok(None)` when the job may send; `Ok(Some((wait, rule)))` when a
    /// rule refuses it, with how long until it would be let through.
    pub async fn check(
        &self,
        redis: &mut ConnectionManager,
        tenant: Uuid,
        job: Uuid,
        is_otp: bool,
        receptors: &[String],
    ) -> Result<Option<(Duration, &Rule)>, redis::RedisError> {
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(chrono::Utc::now().timestamp_millis()).arg(job.to_string());
        // The rule of each key, in order (Lua's index is 1-based).
        let mut key_rules = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.kind == Kind::Otp && !is_otp {
                continue;
            }
            let subjects: Vec<String> = match rule.scope {
                Scope::Tenant => vec![String::new()],
                Scope::Receptor => receptors.to_vec(),
            };
            for subject in subjects {
                invocation.key(format!("{}:{}:{tenant}:{subject}", self.prefix, rule.name(index)));
                invocation.arg(rule.window.as_millis() as u64).arg(rule.limit);
                key_rules.push(rule);
            }
        }
        if key_rules.is_empty() {
            return Ok(None);
        }
        let (wait_ms, which): (u64, usize) = invocation.invoke_async(redis).await?;
        Ok((wait_ms > 0).then(|| (Duration::from_millis(wait_ms), key_rules[which.saturating_sub(1)])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse() {
        let rules = parse_rules(DEFAULT_RULES).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1], Rule { scope: Scope::Receptor, kind: Kind::Otp, limit: 5, window: Duration::from_secs(3600) });
        assert_eq!(parse_rules("tenant:any:1000/60").unwrap()[0].scope, Scope::Tenant);
        assert_eq!(rules[1].to_string(), "receptor:otp:5/3600");
        assert!(parse_rules("").unwrap().is_empty());
        assert!(parse_rules("none").unwrap().is_empty());
        for bad in ["receptor:otp", "phone:otp:1/60", "receptor:sms:1/60", "receptor:otp:0/60", "receptor:otp:1/x", "receptor:otp:1"] {
            assert!(parse_rules(bad).is_err(), "{bad}");
        }
    }
}
