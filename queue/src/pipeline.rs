//! Pipelines: steps that run one after another, each an ordinary job, where
//! a step's payload may take values from earlier steps' results — e.g. a
//! consultation recording transcribed, the transcript turned into a SOAP
//! note, the note sent to the clinic's system.
//!
//! A reference is a JSON object with the single key `from` anywhere in a
//! step's payload: `{"from": "steps.0.result.text"}` is replaced by that
//! value of step 0's result (`steps.N.job_id` gives the step's job id).
//! References are checked at submission (an earlier step; a field that the
//! step's job type puts in its results), resolved when the step starts, and
//! the resolved payload is validated like any submission then.
//!
//! The next step is started by whichever worker finished the current one
//! (or by the API when a step is cancelled), and, should that worker die
//! first, by the sweeper: see [`advance`].

use std::sync::Arc;

use chrono::Utc;
use peyk_schema::queries::pipelines::{self as q, Advance};
use peyk_schema::{DbError, DbPool, JobRow, JobStatus, NewJob, PipelineRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::queue::{Enqueue, Queue};
use crate::registry::Registry;
use crate::{Clients, ValidationErrors};

pub const MAX_STEPS: usize = 10;

/// One step as submitted.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// The job type, e.g. `transcription`, `medical_analysis`, `webhook`.
    #[serde(rename = "type")]
    pub job_type: String,
    /// The job's payload; values may be references to earlier steps,
    /// `{"from": "steps.0.result.text"}`.
    #[schema(value_type = Object)]
    pub payload: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<i32>,
}

/// Where a reference points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub step: usize,
    pub target: Target,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    JobId,
    /// The path inside the result (empty: the whole result). Segments that
    /// are numbers index arrays.
    Result(Vec<String>),
}

/// `Some` when `value` is a reference object, with the parsed reference or
/// what is wrong with it.
fn as_reference(value: &Value) -> Option<Result<Reference, String>> {
    let object = value.as_object()?;
    if object.len() != 1 {
        return None;
    }
    let from = object.get("from")?;
    let Some(text) = from.as_str() else { return Some(Err("`from` must be a string like `steps.0.result.text`".into())) };
    Some(parse_reference(text))
}

fn parse_reference(text: &str) -> Result<Reference, String> {
    let bad = || format!("`{text}` is not a reference like `steps.0.result.text` or `steps.0.job_id`");
    let mut parts = text.split('.');
    if parts.next() != Some("steps") {
        return Err(bad());
    }
    let step: usize = parts.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
    let target = match parts.next() {
        Some("job_id") if parts.clone().next().is_none() => Target::JobId,
        Some("result") => {
            let path: Vec<String> = parts.map(str::to_string).collect();
            if path.iter().any(String::is_empty) {
                return Err(bad());
            }
            Target::Result(path)
        }
        _ => return Err(bad()),
    };
    Ok(Reference { step, target })
}

/// Every reference in `value`, with the field path it sits at.
fn references(value: &Value, at: &str, found: &mut Vec<(String, Result<Reference, String>)>) {
    if let Some(reference) = as_reference(value) {
        found.push((at.to_string(), reference));
        return;
    }
    match value {
        Value::Object(map) => map.iter().for_each(|(k, v)| references(v, &format!("{at}.{k}"), found)),
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| references(v, &format!("{at}[{i}]"), found)),
        _ => {}
    }
}

/// Checks a submitted pipeline. Steps whose payloads hold no reference are
/// validated in full now; the others when they start.
pub fn validate_steps<C: Clients>(registry: &Registry<C>, steps: &[StepSpec]) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::new();
    if steps.is_empty() || steps.len() > MAX_STEPS {
        errors.add("steps", format!("must list 1 to {MAX_STEPS} steps"));
    }
    for (i, step) in steps.iter().enumerate() {
        let field = format!("steps[{i}]");
        let Some(kind) = registry.get(&step.job_type) else {
            errors.add(
                format!("{field}.type"),
                format!("unknown job type `{}`; valid types: {}", step.job_type, registry.submittable_names().join(", ")),
            );
            continue;
        };
        if kind.internal {
            errors.add(format!("{field}.type"), "is queued by Peyk itself");
            continue;
        }
        if let Some(max) = step.max_attempts {
            if !(1..=25).contains(&max) {
                errors.add(format!("{field}.max_attempts"), "must be between 1 and 25");
            }
        }
        let mut found = Vec::new();
        references(&step.payload, &format!("{field}.payload"), &mut found);
        if found.is_empty() {
            if let Err(invalid) = kind.validate(&step.payload) {
                errors.0.extend(invalid.nested(&format!("{field}.payload")).0);
            }
        }
        for (at, reference) in found {
            match reference {
                Err(problem) => errors.add(at, problem),
                Ok(Reference { step: source, .. }) if source >= i => {
                    errors.add(at, format!("refers to step {source}, which does not run before step {i}"))
                }
                Ok(Reference { step: source, target: Target::Result(path) }) => {
                    let source_type = &steps[source].job_type;
                    let fields = registry.get(source_type).map_or(&[][..], |kind| kind.result_fields);
                    if let Some(first) = path.first() {
                        if !fields.is_empty() && !fields.contains(&first.as_str()) {
                            errors.add(at, format!("`{source_type}` results have no field `{first}` (they have: {})", fields.join(", ")));
                        }
                    }
                }
                Ok(_) => {}
            }
        }
    }
    errors.into_result()
}

/// Replaces the references in `payload` with values from the steps' jobs.
pub fn resolve(payload: &Value, jobs: &[JobRow]) -> Result<Value, String> {
    if let Some(reference) = as_reference(payload) {
        let reference = reference?;
        let job = jobs
            .iter()
            .find(|j| j.pipeline_step == Some(reference.step as i32))
            .ok_or_else(|| format!("step {} has no job", reference.step))?;
        return match &reference.target {
            Target::JobId => Ok(Value::String(job.id.to_string())),
            Target::Result(path) => {
                let mut value = job.result.as_ref().ok_or_else(|| format!("step {} has no result", reference.step))?;
                for segment in path {
                    value = match value {
                        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                        other => other.get(segment),
                    }
                    .ok_or_else(|| format!("steps.{}.result.{} is not in the step's result", reference.step, path.join(".")))?;
                }
                Ok(value.clone())
            }
        };
    }
    Ok(match payload {
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| Ok((k.clone(), resolve(v, jobs)?))).collect::<Result<_, String>>()?),
        Value::Array(items) => Value::Array(items.iter().map(|v| resolve(v, jobs)).collect::<Result<_, _>>()?),
        other => other.clone(),
    })
}

/// The job of step `index`, its payload resolved and validated.
pub fn step_job<C: Clients>(
    registry: &Registry<C>,
    pipeline: &PipelineRow,
    index: usize,
    jobs: &[JobRow],
) -> Result<NewJob, (String, String)> {
    let steps: Vec<StepSpec> =
        serde_json::from_value(pipeline.steps.clone()).map_err(|e| ("invalid_pipeline".to_string(), e.to_string()))?;
    let spec = steps.get(index).ok_or_else(|| ("invalid_pipeline".to_string(), format!("no step {index}")))?;
    let payload = resolve(&spec.payload, jobs).map_err(|e| ("missing_reference".to_string(), format!("step {index}: {e}")))?;
    let Some(kind) = registry.get(&spec.job_type) else {
        return Err(("invalid_step_payload".into(), format!("step {index}: unknown job type `{}`", spec.job_type)));
    };
    let validated = kind
        .validate(&payload)
        .map_err(|errors| ("invalid_step_payload".to_string(), format!("step {index} ({}): {errors}", spec.job_type)))?;
    let job = crate::submit::system_job(pipeline.tenant_id, kind, validated.payload, Utc::now());
    Ok(NewJob {
        max_attempts: spec.max_attempts.unwrap_or(job.max_attempts),
        pipeline_id: Some(pipeline.id),
        pipeline_step: Some(index as i32),
        metadata: pipeline.metadata.clone(),
        ..job
    })
}

/// What to do with a pipeline given its steps' jobs so far.
pub fn decide<C: Clients>(registry: &Registry<C>, pipeline: &PipelineRow, jobs: &[JobRow]) -> Advance {
    let step_count = pipeline.steps.as_array().map_or(0, Vec::len);
    let current = pipeline.current_step;
    let Some(job) = jobs.iter().find(|j| j.pipeline_step == Some(current)) else {
        // Created without its job (cannot happen through the API): start it.
        return start(registry, pipeline, current as usize, jobs);
    };
    match job.status() {
        JobStatus::Succeeded if current as usize + 1 >= step_count => Advance::Finish { status: "succeeded", error: None },
        JobStatus::Succeeded => start(registry, pipeline, current as usize + 1, jobs),
        JobStatus::Failed | JobStatus::Dead => Advance::Finish {
            status: "failed",
            error: Some((
                "step_failed".into(),
                format!(
                    "step {current} ({}) {}: {}: {}",
                    job.job_type,
                    job.status,
                    job.error_code.as_deref().unwrap_or("error"),
                    job.error_message.as_deref().unwrap_or("")
                ),
            )),
        },
        JobStatus::Cancelled => Advance::Finish {
            status: "cancelled",
            error: Some(("step_cancelled".into(), format!("step {current} ({}) was cancelled", job.job_type))),
        },
        JobStatus::Queued | JobStatus::Scheduled | JobStatus::Running => Advance::Wait,
    }
}

fn start<C: Clients>(registry: &Registry<C>, pipeline: &PipelineRow, index: usize, jobs: &[JobRow]) -> Advance {
    match step_job(registry, pipeline, index, jobs) {
        Ok(job) => Advance::Start(Box::new(job)),
        Err(error) => Advance::Finish { status: "failed", error: Some(error) },
    }
}

/// Moves a pipeline on if its current step has finished, and pushes the
/// step it started. Safe to call at any time, from anywhere, concurrently.
pub async fn advance<C: Clients>(registry: &Arc<Registry<C>>, pool: &DbPool, queue: &Queue, pipeline: Uuid) -> Result<(), DbError> {
    // Decided inside the pipeline's transaction, which owns what it calls.
    let registry = registry.clone();
    let decide = move |pipeline: &PipelineRow, jobs: &[JobRow]| decide(&registry, pipeline, jobs);
    match q::advance(pool, pipeline, decide).await? {
        Some(job) => {
            if let Some(entry) = Enqueue::for_row(&job) {
                if let Err(e) = queue.enqueue(&entry).await {
                    tracing::warn!(error = %e, job_id = %job.id, "pipeline step stored but not pushed; the sweeper will queue it");
                }
            }
        }
        // Ended (or still waiting on its step: a waiter then reads it once more for nothing).
        None => queue.announce_finished(&[pipeline]).await,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse() {
        assert_eq!(parse_reference("steps.0.result.text").unwrap(), Reference { step: 0, target: Target::Result(vec!["text".into()]) });
        assert_eq!(parse_reference("steps.2.job_id").unwrap(), Reference { step: 2, target: Target::JobId });
        assert_eq!(parse_reference("steps.1.result").unwrap().target, Target::Result(vec![]));
        for bad in ["step.0.result", "steps.x.result", "steps.0.payload.url", "steps.0.result..a", "steps.0.job_id.x", "steps"] {
            assert!(parse_reference(bad).is_err(), "{bad}");
        }
    }
}
