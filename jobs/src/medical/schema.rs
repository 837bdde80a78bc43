//! The JSON Schema of each analysis type's output: sent to the model as
//! `response_format: json_schema` (strict), quoted in the prompt for
//! `json_object` providers, checked on every answer, and published in the
//! OpenAPI document. One definition serves all four, so they cannot drift.
//!
//! The schemas keep to what OpenAI's strict mode accepts: every property
//! required, `additionalProperties: false`, optional values as
//! `["string", "null"]`. [`validate`] checks exactly that subset (type,
//! properties, required, additionalProperties, enum, items, minItems,
//! minLength); a general JSON Schema engine would add much code for
//! keywords these schemas never use.

use serde_json::{json, Map, Value};

use super::AnalysisType;

fn string(description: &str) -> Value {
    json!({ "type": "string", "minLength": 1, "description": description })
}

fn nullable(description: &str) -> Value {
    json!({ "type": ["string", "null"], "description": description })
}

fn one_of(values: &[&str], description: &str) -> Value {
    json!({ "type": "string", "enum": values, "description": description })
}

fn list(items: Value, description: &str) -> Value {
    json!({ "type": "array", "items": items, "description": description })
}

fn object(properties: &[(&str, Value)]) -> Value {
    let required: Vec<&str> = properties.iter().map(|(name, _)| *name).collect();
    let properties: Map<String, Value> = properties.iter().map(|(name, schema)| (name.to_string(), schema.clone())).collect();
    json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false })
}

pub const URGENCY_LEVELS: &[&str] = &["emergency", "urgent", "semi_urgent", "routine", "self_care"];
pub const SEVERITIES: &[&str] = &["mild", "moderate", "severe", "unknown"];

/// The schema of `output` for an analysis type.
pub fn output_schema(kind: AnalysisType) -> Value {
    match kind {
        AnalysisType::Symptoms => object(&[
            (
                "symptoms",
                list(
                    object(&[
                        ("name", string("the symptom, in the answer's language")),
                        ("duration", nullable("how long, as stated (e.g. \"3 days\"); null if not stated")),
                        ("severity", one_of(SEVERITIES, "as stated or clearly implied; unknown if not")),
                        ("notes", nullable("onset, pattern, triggers; null if none")),
                    ]),
                    "every symptom the text mentions",
                ),
            ),
            (
                "red_flags",
                list(
                    object(&[("finding", string("what was found")), ("reason", string("why it needs urgent attention"))]),
                    "findings that need urgent medical attention",
                ),
            ),
            ("summary", string("one short paragraph")),
        ]),
        AnalysisType::SoapNote => object(&[
            ("subjective", string("what the patient reports: complaint, history, symptoms")),
            ("objective", string("examination findings, vital signs and results mentioned")),
            ("assessment", string("the clinician's assessment as discussed (not a new diagnosis)")),
            ("plan", string("tests, treatment, advice and follow-up discussed")),
        ]),
        AnalysisType::Triage => object(&[
            (
                "urgency",
                one_of(
                    URGENCY_LEVELS,
                    "emergency: now; urgent: within hours; semi_urgent: within 1-2 days; routine: regular appointment; self_care",
                ),
            ),
            ("reasons", json!({ "type": "array", "items": string("a reason"), "minItems": 1, "description": "why this level" })),
            ("red_flags", list(string("a red flag"), "red flags found, if any")),
            ("recommended_action", string("the next step for the patient")),
        ]),
        AnalysisType::Medications => object(&[
            (
                "medications",
                list(
                    object(&[
                        ("name", string("the drug as written")),
                        ("dose", nullable("e.g. \"500 mg\"; null if not stated")),
                        ("frequency", nullable("e.g. \"twice daily\"; null if not stated")),
                        ("route", nullable("e.g. \"oral\"; null if not stated")),
                        ("indication", nullable("what it is for, if stated")),
                    ]),
                    "every drug mentioned",
                ),
            ),
            (
                "interactions_to_check",
                list(
                    object(&[
                        ("drugs", json!({ "type": "array", "items": string("a drug"), "minItems": 2 })),
                        ("concern", string("the possible interaction")),
                    ]),
                    "combinations a pharmacist or physician should check",
                ),
            ),
            ("notes", nullable("anything else worth checking (allergies, duplicates); null if none")),
        ]),
        AnalysisType::Summary => object(&[
            ("summary", string("a short summary for a clinician")),
            ("key_points", list(string("a key point"), "the main points")),
        ]),
        // `generate` answers in free text; Peyk wraps it.
        AnalysisType::Generate => object(&[("text", json!({ "type": "string", "description": "the model's answer" }))]),
    }
}

/// The schema as sent to the model: without `minLength`, which OpenAI's
/// strict mode refuses (our own check still applies it).
pub fn for_model(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            Value::Object(map.iter().filter(|(k, _)| k.as_str() != "minLength").map(|(k, v)| (k.clone(), for_model(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(for_model).collect()),
        other => other.clone(),
    }
}

/// Names of the output schemas: in `response_format.json_schema.name` and
/// in the OpenAPI document's components.
pub fn schema_name(kind: AnalysisType) -> &'static str {
    match kind {
        AnalysisType::Symptoms => "medical_symptoms",
        AnalysisType::SoapNote => "medical_soap_note",
        AnalysisType::Triage => "medical_triage",
        AnalysisType::Medications => "medical_medications",
        AnalysisType::Summary => "medical_summary",
        AnalysisType::Generate => "medical_generate",
    }
}

/// Problems of `value` against `schema`, as `$.path: problem`. Never quotes
/// the value itself: these messages reach job errors, and model output
/// must not.
pub fn validate(value: &Value, schema: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(value, schema, "$", &mut errors);
    errors.truncate(10);
    errors
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check(value: &Value, schema: &Value, path: &str, errors: &mut Vec<String>) {
    let allowed: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let actual = type_name(value);
    if !allowed.is_empty() && !allowed.iter().any(|t| *t == actual || (*t == "number" && actual == "integer")) {
        errors.push(format!("{path}: must be {}, not {actual}", allowed.join(" or ")));
        return;
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(value) {
            let names: Vec<&str> = options.iter().filter_map(Value::as_str).collect();
            errors.push(format!("{path}: must be one of {}", names.join(", ")));
        }
    }
    match value {
        Value::Object(map) => {
            let properties = schema["properties"].as_object();
            for name in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                if !map.contains_key(name) {
                    errors.push(format!("{path}.{name}: is required"));
                }
            }
            for (name, item) in map {
                match properties.and_then(|p| p.get(name)) {
                    Some(sub) => check(item, sub, &format!("{path}.{name}"), errors),
                    None if schema["additionalProperties"] == Value::Bool(false) => {
                        errors.push(format!("{path}: unexpected property `{}`", short(name)))
                    }
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(min) = schema["minItems"].as_u64() {
                if (items.len() as u64) < min {
                    errors.push(format!("{path}: must have at least {min} item(s)"));
                }
            }
            if schema.get("items").is_some() {
                for (i, item) in items.iter().enumerate() {
                    check(item, &schema["items"], &format!("{path}[{i}]"), errors);
                }
            }
        }
        Value::String(s) => {
            if let Some(min) = schema["minLength"].as_u64() {
                if (s.trim().chars().count() as u64) < min {
                    errors.push(format!("{path}: must not be empty"));
                }
            }
        }
        _ => {}
    }
}

/// A property name the model made up, kept short.
fn short(name: &str) -> String {
    name.chars().take(40).collect()
}

/// The job's result (published in the OpenAPI document).
pub fn result_schema() -> Value {
    let kinds: Vec<&str> = AnalysisType::ALL.iter().map(|k| k.as_str()).collect();
    let outputs: Vec<Value> =
        AnalysisType::ALL.iter().map(|k| json!({ "$ref": format!("#/components/schemas/MedicalAnalysisOutput_{}", k.as_str()) })).collect();
    let count = json!({ "type": "integer", "minimum": 0 });
    json!({
        "type": "object",
        "description": "Result of a `medical_analysis` job. `output` follows the schema of its `analysis_type`.",
        "required": ["analysis_type", "language", "output", "disclaimer", "model", "usage", "redaction", "response_format", "model_calls"],
        "properties": {
            "analysis_type": { "type": "string", "enum": kinds },
            "language": { "type": "string", "enum": ["fa", "en"] },
            "output": { "oneOf": outputs },
            "disclaimer": { "type": "object", "description": "Always present: not a diagnosis", "properties": { "en": { "type": "string" }, "fa": { "type": "string" } } },
            "model": { "type": "string" },
            "usage": { "type": "object", "properties": { "prompt_tokens": count, "completion_tokens": count, "total_tokens": count } },
            "redaction": { "type": "object", "properties": {
                "applied": { "type": "boolean" },
                "removed": { "type": "object", "properties": { "phone": count, "email": count, "national_id": count, "name": count } }
            } },
            "response_format": { "type": "string", "enum": ["json_schema", "json_object", "text"] },
            "model_calls": { "type": "integer", "description": "requests made (2 or more after a correction or a json_object fallback)" },
            "finish_reason": { "type": ["string", "null"] },
            "timing_ms": { "type": "object", "properties": { "provider": { "type": "number" }, "worker": { "type": "number" } } }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_outputs_pass() {
        let symptoms = json!({
            "symptoms": [{ "name": "chest pain", "duration": "2 days", "severity": "severe", "notes": null }],
            "red_flags": [{ "finding": "chest pain on exertion", "reason": "possible cardiac cause" }],
            "summary": "Two days of chest pain."
        });
        assert_eq!(validate(&symptoms, &output_schema(AnalysisType::Symptoms)), Vec::<String>::new());
        let triage =
            json!({ "urgency": "urgent", "reasons": ["fever in an infant"], "red_flags": [], "recommended_action": "see a doctor today" });
        assert!(validate(&triage, &output_schema(AnalysisType::Triage)).is_empty());
    }

    #[test]
    fn problems_are_named_by_path_without_values() {
        let bad = json!({
            "symptoms": [{ "name": "سرفه", "duration": 3, "severity": "extreme" }],
            "red_flags": "none",
            "summary": "",
            "secret_extra": "leak"
        });
        let errors = validate(&bad, &output_schema(AnalysisType::Symptoms));
        assert!(errors.contains(&"$.symptoms[0].notes: is required".to_string()), "{errors:?}");
        assert!(errors.contains(&"$.symptoms[0].duration: must be string or null, not integer".to_string()), "{errors:?}");
        assert!(errors.contains(&"$.symptoms[0].severity: must be one of mild, moderate, severe, unknown".to_string()), "{errors:?}");
        assert!(errors.contains(&"$.red_flags: must be array, not string".to_string()), "{errors:?}");
        assert!(errors.contains(&"$.summary: must not be empty".to_string()), "{errors:?}");
        assert!(errors.contains(&"$: unexpected property `secret_extra`".to_string()), "{errors:?}");
        assert!(errors.iter().all(|e| !e.contains("extreme") && !e.contains("سرفه") && !e.contains("leak")));
        let errors = validate(
            &json!({ "urgency": "urgent", "reasons": [], "red_flags": [], "recommended_action": "x" }),
            &output_schema(AnalysisType::Triage),
        );
        assert_eq!(errors, ["$.reasons: must have at least 1 item(s)"]);
        assert_eq!(validate(&json!([1]), &output_schema(AnalysisType::Summary)), ["$: must be object, not array"]);
    }

    #[test]
    fn schemas_follow_strict_mode_rules() {
        fn walk(schema: &Value) {
            if schema["type"] == "object" {
                assert_eq!(schema["additionalProperties"], false);
                let props: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
                let required: Vec<&str> = schema["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
                assert_eq!(props.len(), required.len());
                schema["properties"].as_object().unwrap().values().for_each(walk);
            }
            if let Some(items) = schema.get("items") {
                walk(items);
            }
        }
        for kind in AnalysisType::ALL {
            walk(&output_schema(kind));
        }
    }
}
