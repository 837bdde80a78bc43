//! A consultation given as a speaker-labelled transcript (`segments`, e.g.
//! `{"from": "steps.0.result.segments"}` after a `transcription` step with
//! `speakers`): the model gets it as one line per turn with the speaker's
//! label and, where known, role, and is told to keep who said what apart —
//! the patient's complaints are not the clinician's findings, and a
//! patient's guess is not the clinician's assessment.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ValidationErrors;

pub const MAX_SEGMENTS: usize = 5_000;

/// One segment of a transcript: its text and speaker. Other fields of a
/// transcription's segments (`id`, `start`, `end`…) are accepted and ignored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Utterance {
    /// `S1`, `S2`… as the transcription labelled them; absent: unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
    pub text: String,
}

/// Who a speaker is in the consultation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpeakerRole {
    Clinician,
    Patient,
    /// A relative or carer speaking with or for the patient.
    Companion,
    Interpreter,
    Other,
}

impl SpeakerRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clinician => "clinician",
            Self::Patient => "patient",
            Self::Companion => "companion",
            Self::Interpreter => "interpreter",
            Self::Other => "other",
        }
    }
}

/// Who each speaker is: `{"S1": "clinician", "S2": "patient"}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SpeakerRoles(pub BTreeMap<String, SpeakerRole>);

/// The OpenAPI schema of [`SpeakerRoles`], written out: utoipa would file a
/// map under the name `BTreeMap`, which another map (job metadata) has.
pub fn speaker_roles_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    let roles = ["clinician", "patient", "companion", "interpreter", "other"];
    let role = ObjectBuilder::new().schema_type(Type::String).enum_values(Some(roles));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "Who each speaker of `segments` is, e.g. `{\"S1\": \"clinician\", \"S2\": \"patient\"}`; a speaker left out is worked out by the model.",
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(role.build().into())))
        .build()
}

impl SpeakerRoles {
    fn get(&self, speaker: &str) -> Option<SpeakerRole> {
        self.0.get(speaker).copied()
    }
}

/// The speakers of `segments`, in order of first appearance.
fn speakers(segments: &[Utterance]) -> Vec<&str> {
    let mut seen: Vec<&str> = Vec::new();
    for speaker in segments.iter().filter_map(|s| s.speaker.as_deref()) {
        if !seen.contains(&speaker) {
            seen.push(speaker);
        }
    }
    seen
}

/// One line per turn, `[S1 (clinician)] …`; consecutive segments of one
/// speaker share a line; segments without a speaker are `[?]`.
pub fn render(segments: &[Utterance], roles: &SpeakerRoles) -> String {
    let mut lines: Vec<(Option<&str>, String)> = Vec::new();
    for segment in segments {
        let text = segment.text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() {
            continue;
        }
        let speaker = segment.speaker.as_deref();
        match lines.last_mut() {
            Some((last, line)) if *last == speaker => {
                line.push(' ');
                line.push_str(&text);
            }
            _ => lines.push((speaker, text)),
        }
    }
    lines
        .iter()
        .map(|(speaker, line)| match (speaker, speaker.and_then(|s| roles.get(s))) {
            (Some(s), Some(role)) => format!("[{s} ({})] {line}", role.as_str()),
            (Some(s), None) => format!("[{s}] {line}"),
            (None, _) => format!("[?] {line}"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the system message adds for a conversation.
pub fn instructions(segments: &[Utterance], roles: &SpeakerRoles) -> String {
    let speakers = speakers(segments);
    let known: Vec<String> = speakers.iter().filter_map(|s| roles.get(s).map(|r| format!("{s} is the {}", r.as_str()))).collect();
    let who = if known.len() == speakers.len() && !known.is_empty() {
        format!("{}.", known.join(", "))
    } else if known.is_empty() {
        "Which speaker is the clinician and which the patient is not given: work it out from what each one says (who asks, examines and advises; who reports complaints).".to_string()
    } else {
        format!("{}; work out the others' roles from what they say.", known.join(", "))
    };
    format!(
        "The text is a conversation: each line starts with its speaker's label in brackets. {who} \
         Keep who said what apart: symptoms, history and concerns come from the patient (or a companion speaking for them); \
         findings, assessment and plan come from the clinician. Never present the patient's own guess as the clinician's assessment."
    )
}

/// Checks `segments` and `roles` as a job's `segments` and `speaker_roles`.
pub fn validate(segments: &[Utterance], roles: Option<&SpeakerRoles>, errors: &mut ValidationErrors) {
    if segments.is_empty() || segments.len() > MAX_SEGMENTS {
        errors.add("segments", format!("must list 1 to {MAX_SEGMENTS} segments"));
    } else if segments.iter().all(|s| s.text.trim().is_empty()) {
        errors.add("segments", "hold no text");
    }
    for (i, segment) in segments.iter().enumerate() {
        if segment.speaker.as_ref().is_some_and(|s| s.is_empty() || s.chars().count() > 32) {
            errors.add(format!("segments[{i}].speaker"), "must be 1 to 32 characters");
        }
    }
    let present = speakers(segments);
    for speaker in roles.into_iter().flat_map(|r| r.0.keys()) {
        if !present.contains(&speaker.as_str()) {
            errors.add(format!("speaker_roles.{speaker}"), format!("no segment has speaker `{speaker}`"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(speaker: &str, text: &str) -> Utterance {
        Utterance { speaker: Some(speaker.into()), text: text.into() }
    }

    #[test]
    fn turns_become_labelled_lines_with_roles_where_known() {
        let segments = [said("S1", " What brings you in?"), said("S2", " A cough"), said("S2", " for a week."), said("S1", " Any fever?")];
        let roles = SpeakerRoles(BTreeMap::from([("S1".into(), SpeakerRole::Clinician)]));
        assert_eq!(
            render(&segments, &roles),
            "[S1 (clinician)] What brings you in?\n[S2] A cough for a week.\n[S1 (clinician)] Any fever?"
        );
        let told = instructions(&segments, &roles);
        assert!(told.contains("S1 is the clinician; work out the others' roles"), "{told}");
        let both = SpeakerRoles(BTreeMap::from([("S1".into(), SpeakerRole::Clinician), ("S2".into(), SpeakerRole::Patient)]));
        assert!(instructions(&segments, &both).contains("S1 is the clinician, S2 is the patient."));
        assert!(instructions(&segments, &SpeakerRoles::default()).contains("work it out from what each one says"));
    }

    #[test]
    fn the_documented_roles_are_the_roles() {
        let schema = serde_json::to_value(speaker_roles_schema()).unwrap();
        let documented = &schema["additionalProperties"]["enum"];
        for role in [SpeakerRole::Clinician, SpeakerRole::Patient, SpeakerRole::Companion, SpeakerRole::Interpreter, SpeakerRole::Other] {
            assert!(documented.as_array().unwrap().contains(&role.as_str().into()), "{schema}");
            assert_eq!(serde_json::to_value(role).unwrap(), role.as_str());
        }
    }

    #[test]
    fn roles_must_name_speakers_of_the_segments() {
        let mut errors = ValidationErrors::new();
        let roles = SpeakerRoles(BTreeMap::from([("S3".into(), SpeakerRole::Patient)]));
        validate(&[said("S1", "Hello")], Some(&roles), &mut errors);
        validate(&[], None, &mut errors);
        let fields: Vec<String> = errors.0.into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["speaker_roles.S3", "segments"]);
    }
}
