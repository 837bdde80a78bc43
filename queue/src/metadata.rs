//! Metadata: the client's own keys on a job or a pipeline
//! (`{"appointment": "4242", "clinic": "tehran-3"}`), returned with it and
//! filtered on (`GET /v1/jobs?metadata[appointment]=4242`), so that an app
//! finds "the jobs of appointment 4242" without a mapping table. Small and
//! flat on purpose: string values only, bounded keys and size, so that the
//! index stays small and nothing large rides along with every job.

use std::collections::BTreeMap;

use crate::validation::ValidationErrors;

/// Keys → string values.
pub type Metadata = BTreeMap<String, String>;

pub const MAX_KEYS: usize = 20;
pub const MAX_KEY_CHARS: usize = 64;
pub const MAX_VALUE_CHARS: usize = 500;

/// A key: 1–64 of `A-Z a-z 0-9 _ - . :` (they go into URLs as
/// `metadata[key]` unescaped).
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
        return Err(format!("a key must be 1 to {MAX_KEY_CHARS} characters"));
    }
    if !key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')) {
        return Err("a key may hold only letters, digits, `_`, `-`, `.` and `:`".into());
    }
    Ok(())
}

/// Checks `metadata`, naming each problem's field under `field`
/// (`metadata.appointment`).
pub fn check(field: &str, metadata: &Metadata) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::new();
    if metadata.len() > MAX_KEYS {
        errors.add(field, format!("at most {MAX_KEYS} keys"));
    }
    for (key, value) in metadata {
        if let Err(problem) = check_key(key) {
            errors.add(format!("{field}.{key}"), problem);
        }
        if value.chars().count() > MAX_VALUE_CHARS {
            errors.add(format!("{field}.{key}"), format!("a value must be at most {MAX_VALUE_CHARS} characters"));
        }
    }
    errors.into_result()
}

/// As stored (`{}` for none).
pub fn to_value(metadata: Option<&Metadata>) -> serde_json::Value {
    metadata.map_or_else(|| serde_json::json!({}), |m| serde_json::to_value(m).unwrap_or_else(|_| serde_json::json!({})))
}

/// As stored, back (a row holds only what [`check`] let through).
pub fn from_value(value: &serde_json::Value) -> Metadata {
    serde_json::from_value(value.clone()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_values_and_counts_are_bounded() {
        let ok: Metadata = [("appointment".to_string(), "4242".to_string()), ("clinic:branch".into(), "tehran-3".into())].into();
        assert!(check("metadata", &ok).is_ok());
        let bad: Metadata = [("has space".to_string(), "x".to_string()), ("long".into(), "x".repeat(501))].into();
        let errors = check("metadata", &bad).unwrap_err();
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["metadata.has space", "metadata.long"]);
        let many: Metadata = (0..21).map(|n| (format!("k{n}"), String::new())).collect();
        assert!(check("metadata", &many).is_err());
        assert_eq!(from_value(&to_value(Some(&ok))), ok);
    }
}
