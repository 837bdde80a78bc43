//! What the model is asked: one system message with the task, the answer's
//! language and the output schema, and one user message with the (already
//! redacted) text and patient context.
//!
//! The schema is quoted in the system message even when it is also sent as
//! `response_format`: `json_object` providers (and small local models) have
//! nothing else to go by.

use serde_json::Value;

use super::{AnalysisType, Language, PatientContext};

pub const DISCLAIMER_EN: &str = "This analysis was generated automatically by a language model to assist a healthcare professional. It is not a diagnosis or medical advice, and must be reviewed by a qualified clinician before any decision.";
pub const DISCLAIMER_FA: &str = "این تحلیل به‌طور خودکار توسط یک مدل زبانی و برای کمک به کادر درمان تهیه شده است. تشخیص پزشکی یا توصیهٔ درمانی نیست و پیش از هر تصمیمی باید توسط پزشک یا متخصص واجد شرایط بررسی شود.";

/// The language of a text: Persian when letters of the Arabic script
/// outnumber Latin ones, else English.
pub fn detect_language(text: &str) -> Language {
    let (mut arabic_script, mut latin) = (0usize, 0usize);
    for c in text.chars() {
        if matches!(c, '\u{0600}'..='\u{06FF}' | '\u{0750}'..='\u{077F}' | '\u{FB50}'..='\u{FDFF}' | '\u{FE70}'..='\u{FEFF}')
            && c.is_alphabetic()
        {
            arabic_script += 1;
        } else if c.is_ascii_alphabetic() {
            latin += 1;
        }
    }
    if arabic_script > latin {
        Language::Fa
    } else {
        Language::En
    }
}

fn task(kind: AnalysisType) -> &'static str {
    match kind {
        AnalysisType::Symptoms => "List every symptom the text mentions, with its duration and severity as stated (null when the text does not say; severity `unknown` when not stated). List red flags: findings that need urgent medical attention, each with the reason. Add a one-paragraph summary.",
        AnalysisType::SoapNote => "Turn the consultation transcript into a SOAP note. subjective: what the patient reports. objective: examination findings, vital signs and test results mentioned. assessment: the clinician's assessment as discussed, not a diagnosis of your own. plan: tests, treatment, advice and follow-up discussed. When the transcript has nothing for a section, say so in one short sentence.",
        AnalysisType::Triage => "Assign an urgency level: emergency (needs emergency care now), urgent (see a clinician within hours), semi_urgent (within 1-2 days), routine (a regular appointment), self_care. Give the reasons, the red flags found, and the recommended next step. When in doubt, choose the more urgent level.",
        AnalysisType::Medications => "List every drug mentioned with its dose, frequency, route and indication as written (null when not stated). List combinations of these drugs whose interaction a pharmacist or physician should check, with the possible concern. Do not add drugs the text does not mention.",
        AnalysisType::Summary => "Summarise the text for a clinician: a short summary and its key points.",
        AnalysisType::Generate => "",
    }
}

fn language_name(language: Language) -> &'static str {
    match language {
        Language::Fa => "Persian (Farsi)",
        Language::En => "English",
    }
}

/// The system message of a structured analysis.
pub fn system_message(kind: AnalysisType, language: Language, schema_name: &str, schema: &Value) -> String {
    format!(
        "You are a clinical documentation assistant for licensed healthcare professionals. You organise what the text says; you do not diagnose or prescribe.\n\
         Task: {task}\n\
         Write every free-text value in {language}; keep drug names as written.\n\
         Placeholders such as [NAME], [PHONE], [EMAIL] and [NATIONAL_ID] stand for removed personal data: keep them as they are.\n\
         Answer with one JSON object only, no prose and no code fences, matching the JSON Schema `{schema_name}`:\n{schema}",
        task = task(kind),
        language = language_name(language),
    )
}

/// The system message of `generate`: free text in the requested language.
pub fn generate_system_message(language: Language) -> String {
    format!(
        "You are an assistant for licensed healthcare professionals. You do not diagnose or prescribe. Answer in {}. Placeholders such as [NAME] or [PHONE] stand for removed personal data: keep them as they are.",
        language_name(language)
    )
}

/// The user message: patient context (when given) and the text.
pub fn user_message(text: &str, context: Option<&PatientContext>, history: Option<&str>, medications: &[String]) -> String {
    let mut lines = Vec::new();
    if let Some(context) = context {
        if let Some(age) = context.age {
            lines.push(format!("Age: {age} years"));
        }
        if let Some(sex) = context.sex {
            lines.push(format!("Sex: {}", sex.as_str()));
        }
    }
    if let Some(history) = history {
        lines.push(format!("History: {history}"));
    }
    if !medications.is_empty() {
        lines.push(format!("Current medications: {}", medications.join("; ")));
    }
    if lines.is_empty() {
        format!("Text:\n{text}")
    } else {
        format!("Patient context:\n{}\n\nText:\n{text}", lines.join("\n"))
    }
}

/// The correction request after an answer that did not validate.
pub fn correction_message(problems: &[String]) -> String {
    format!(
        "Your answer does not match the required JSON Schema:\n- {}\nAnswer again with only the corrected JSON object.",
        problems.join("\n- ")
    )
}

/// The JSON inside an answer: small models wrap it in code fences or add a
/// sentence around it despite being told not to.
pub fn extract_json(content: &str) -> &str {
    let trimmed = content.trim();
    let unfenced = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.trim_end().strip_suffix("```"))
        .map(str::trim);
    if let Some(inner) = unfenced {
        return inner;
    }
    match (trimmed.find('{'), trimmed.rfind('}')) {
        (Some(start), Some(end)) if start < end && !trimmed.starts_with('{') => &trimmed[start..=end],
        _ => trimmed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_of_the_text() {
        assert_eq!(detect_language("بیمار از سردرد و تب از ۳ روز پیش شکایت دارد"), Language::Fa);
        assert_eq!(detect_language("Patient reports headache and fever for 3 days"), Language::En);
        assert_eq!(detect_language("بیمار metformin 500 mg مصرف می‌کند و از درد شکم شکایت دارد"), Language::Fa);
        assert_eq!(detect_language("1234"), Language::En);
    }

    #[test]
    fn json_inside_answers() {
        assert_eq!(extract_json("```json\n{\"a\": 1}\n```"), "{\"a\": 1}");
        assert_eq!(extract_json("Here it is: {\"a\": 1} hope it helps"), "{\"a\": 1}");
        assert_eq!(extract_json("  {\"a\": 1}  "), "{\"a\": 1}");
        assert_eq!(extract_json("not json"), "not json");
    }
}
