//! What a scheduler does with one due schedule at `now`: which fire times
//! submit (those of `overlap: allow` up to the lookahead too, stored ahead
//! of their time), which are skipped or missed, and where the schedule goes
//! next.
//! Pure, so that the rules (misfire, overlap) are tested without a
//! database.

use chrono::{DateTime, Duration, Utc};
use peyk_schema::queries::schedules::Horizon;
use peyk_schema::ScheduleRow;

use super::Timing;

/// At most this many missed fire times are walked one by one after an
/// outage; beyond it the schedule jumps to its next fire after `now`.
pub const MAX_CATCH_UP: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A job (or pipeline) is submitted for the fire.
    Submit,
    /// `overlap: skip` (or a second waiting fire under `queue_one`): the
    /// previous run had not finished.
    SkippedOverlap,
    /// `overlap: queue_one`: submitted once the previous run finishes.
    Buffered,
    /// Later than the misfire grace and not run under the misfire policy.
    Missed,
}

impl Outcome {
    /// As recorded (`schedule_fires.outcome`) and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Submit => "submitted",
            Outcome::SkippedOverlap => "skipped_overlap",
            Outcome::Buffered => "buffered",
            Outcome::Missed => "missed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fire {
    pub at: DateTime<Utc>,
    pub outcome: Outcome,
    /// `Missed`: how many fire times this one stands for.
    pub missed: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// In fire-time order.
    pub fires: Vec<Fire>,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub buffered_fire_at: Option<DateTime<Utc>>,
}

/// Decides what `schedule` does within `horizon`. `previous_open`: its last
/// run (job or pipeline) has not finished.
pub fn plan(schedule: &ScheduleRow, timing: &Timing, horizon: Horizon, mut previous_open: bool) -> Plan {
    let now = horizon.now;
    let mut fires = Vec::new();
    let mut buffered = schedule.buffered_fire_at;
    // A fire that waited for the previous run goes first, once that run ended.
    if let Some(at) = buffered.filter(|_| !previous_open) {
        fires.push(Fire { at, outcome: Outcome::Submit, missed: None });
        buffered = None;
        previous_open = true;
    }

    let until = if horizon.reaches(schedule, horizon.ahead) { horizon.ahead } else { now };
    let (due, next_fire_at) = due_times(timing, schedule.next_fire_at, until);
    let grace = Duration::seconds(schedule.misfire_grace_seconds.into());
    let (late, on_time): (Vec<_>, Vec<_>) = due.into_iter().partition(|at| now - *at > grace);
    let run_late = match schedule.misfire.as_str() {
        "run_all" => (schedule.misfire_cap.max(1) as usize).min(late.len()),
        "run_once" => late.len().min(1),
        _ => 0,
    };
    // The most recent late fires run; the older ones are recorded as one miss.
    let (missed, late_runs) = late.split_at(late.len() - run_late);
    if let Some(first) = missed.first() {
        fires.push(Fire { at: *first, outcome: Outcome::Missed, missed: Some(missed.len() as i32) });
    }
    for &at in late_runs.iter().chain(&on_time) {
        let outcome = match schedule.overlap.as_str() {
            _ if !previous_open => Outcome::Submit,
            "allow" => Outcome::Submit,
            "queue_one" if buffered.is_none() => Outcome::Buffered,
            _ => Outcome::SkippedOverlap,
        };
        match outcome {
            Outcome::Submit => previous_open = true,
            Outcome::Buffered => buffered = Some(at),
            _ => {}
        }
        fires.push(Fire { at, outcome, missed: None });
    }
    Plan { fires, next_fire_at, buffered_fire_at: buffered }
}

/// The fire times from `next` up to `until`, and the first one after them.
fn due_times(timing: &Timing, next: Option<DateTime<Utc>>, until: DateTime<Utc>) -> (Vec<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let mut due = Vec::new();
    let mut cursor = next;
    while let Some(at) = cursor.filter(|at| *at <= until) {
        if due.len() == MAX_CATCH_UP {
            return (due, timing.next_after(until));
        }
        due.push(at);
        cursor = timing.next_after(at);
    }
    (due, cursor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::TimingSpec;

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + second, 0).unwrap()
    }

    fn every_10s() -> Timing {
        Timing::parse(&TimingSpec {
            cron: None,
            every_seconds: Some(10),
            timezone: "UTC",
            calendar: "gregorian",
            anchor_at: at(0),
            start_at: None,
            end_at: None,
        })
        .unwrap()
    }

    fn schedule(overlap: &str, misfire: &str, cap: i32, next: i64) -> ScheduleRow {
        ScheduleRow {
            id: uuid::Uuid::now_v7(),
            tenant_id: uuid::Uuid::now_v7(),
            name: "s".into(),
            cron: None,
            every_seconds: Some(10),
            timezone: "UTC".into(),
            calendar: "gregorian".into(),
            anchor_at: at(0),
            start_at: None,
            end_at: None,
            target: serde_json::json!({}),
            overlap: overlap.into(),
            misfire: misfire.into(),
            misfire_cap: cap,
            misfire_grace_seconds: 30,
            paused: false,
            next_fire_at: Some(at(next)),
            buffered_fire_at: None,
            last_fire_at: None,
            last_job_id: None,
            last_pipeline_id: None,
            created_at: at(0),
            updated_at: at(0),
        }
    }

    /// A horizon without lookahead.
    fn now(at: DateTime<Utc>) -> Horizon {
        Horizon { now: at, ahead: at }
    }

    fn outcomes(plan: &Plan) -> Vec<(i64, &'static str, Option<i32>)> {
        plan.fires.iter().map(|f| ((f.at - at(0)).num_seconds(), f.outcome.as_str(), f.missed)).collect()
    }

    #[test]
    fn on_time_fire_submits_and_moves_on() {
        let plan = plan(&schedule("allow", "skip", 10, 100), &every_10s(), now(at(100)), false);
        assert_eq!(outcomes(&plan), [(100, "submitted", None)]);
        assert_eq!(plan.next_fire_at, Some(at(110)));
    }

    #[test]
    fn misfire_policies_after_an_outage() {
        // Down from 100 to 165: fires 100..=160 are due, 100..=130 past the 30 s grace.
        let timing = every_10s();
        let skip = plan(&schedule("allow", "skip", 10, 100), &timing, now(at(165)), false);
        assert_eq!(
            outcomes(&skip),
            [(100, "missed", Some(4)), (140, "submitted", None), (150, "submitted", None), (160, "submitted", None)]
        );
        let once = plan(&schedule("allow", "run_once", 10, 100), &timing, now(at(165)), false);
        assert_eq!(outcomes(&once)[..2], [(100, "missed", Some(3)), (130, "submitted", None)]);
        let all = plan(&schedule("allow", "run_all", 2, 100), &timing, now(at(165)), false);
        assert_eq!(outcomes(&all)[..3], [(100, "missed", Some(2)), (120, "submitted", None), (130, "submitted", None)]);
        assert_eq!(all.next_fire_at, Some(at(170)));
    }

    #[test]
    fn allow_schedules_fire_ahead_up_to_the_lookahead_and_others_when_due() {
        let ahead = Horizon { now: at(100), ahead: at(125) };
        let allow = plan(&schedule("allow", "skip", 10, 100), &every_10s(), ahead, true);
        assert_eq!(outcomes(&allow), [(100, "submitted", None), (110, "submitted", None), (120, "submitted", None)]);
        assert_eq!(allow.next_fire_at, Some(at(130)));
        // Whether the previous run overlaps is known only at the fire time.
        let skip = plan(&schedule("skip", "skip", 10, 100), &every_10s(), ahead, false);
        assert_eq!(outcomes(&skip), [(100, "submitted", None)]);
        assert_eq!(skip.next_fire_at, Some(at(110)));
    }

    #[test]
    fn overlap_rules() {
        let timing = every_10s();
        let skip = plan(&schedule("skip", "skip", 10, 100), &timing, now(at(100)), true);
        assert_eq!(outcomes(&skip), [(100, "skipped_overlap", None)]);
        let mut waiting = schedule("queue_one", "run_all", 10, 100);
        let first = plan(&waiting, &timing, now(at(110)), true);
        assert_eq!(outcomes(&first), [(100, "buffered", None), (110, "skipped_overlap", None)]);
        waiting.buffered_fire_at = first.buffered_fire_at;
        waiting.next_fire_at = first.next_fire_at;
        // The previous run ended: the buffered fire is submitted, then the due one waits behind it.
        let later = plan(&waiting, &timing, now(at(120)), false);
        assert_eq!(outcomes(&later), [(100, "submitted", None), (120, "buffered", None)]);
    }
}
