//! Email templates: the built-in ones shipped in the repository, rendering
//! with minijinja, and the page layout (right-to-left for Persian).
//!
//! A template is three sources: subject, HTML and plain text. The HTML is
//! rendered with HTML auto-escaping (a variable can never inject markup);
//! subject and text are not escaped. Tenant templates (stored through the
//! API) are untrusted, so rendering runs on a fuel budget: a template that
//! loops for ever fails instead of holding a worker.

use std::sync::LazyLock;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

/// Longest rendering allowed (minijinja instructions).
const FUEL: u64 = 200_000;

/// The sources of one template in one language (HTML or text may be absent:
/// the text is then derived from the HTML, and a template without HTML
/// sends plain text only).
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    pub subject: &'a str,
    pub html: Option<&'a str>,
    pub text: Option<&'a str>,
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    /// A whole HTML document (laid out), when the email has HTML.
    pub html: Option<String>,
    pub text: String,
}

/// Built-in templates: (name, language, sources), embedded at build time.
macro_rules! builtin {
    ($name:literal, $lang:literal) => {
        (
            $name,
            $lang,
            Sources {
                subject: include_str!(concat!("templates/", $name, ".", $lang, ".subject")),
                html: Some(include_str!(concat!("templates/", $name, ".", $lang, ".html"))),
                text: Some(include_str!(concat!("templates/", $name, ".", $lang, ".txt"))),
            },
        )
    };
}

pub static BUILTIN: [(&str, &str, Sources<'static>); 6] = [
    builtin!("appointment-reminder", "fa"),
    builtin!("appointment-reminder", "en"),
    builtin!("report-ready", "fa"),
    builtin!("report-ready", "en"),
    builtin!("verify", "fa"),
    builtin!("verify", "en"),
];

pub fn builtin(name: &str, language: &str) -> Option<Sources<'static>> {
    BUILTIN.iter().find(|(n, l, _)| *n == name && *l == language).map(|(_, _, s)| *s)
}

/// Names of the built-in templates (for error messages and docs).
pub fn builtin_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = BUILTIN.iter().map(|(n, _, _)| *n).collect();
    names.dedup();
    names
}

/// One environment for every rendering: templates are compiled from their
/// source on each use (microseconds), so tenant edits apply at once.
static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_auto_escape_callback(|name| if name.ends_with(".html") { AutoEscape::Html } else { AutoEscape::None });
    env
});

/// Why a template could not be used: the part (`subject`, `html`, `text`)
/// and minijinja's explanation (with the line).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{part}: {problem}")]
pub struct TemplateError {
    pub part: &'static str,
    pub problem: String,
}

fn describe(error: &minijinja::Error) -> String {
    match error.line() {
        Some(line) => format!("{} (line {line})", error.detail().unwrap_or(&error.kind().to_string())),
        None => error.detail().map(str::to_owned).unwrap_or_else(|| error.kind().to_string()),
    }
}

/// Checks that a source parses (what the template API validates).
pub fn check_syntax(part: &'static str, source: &str) -> Result<(), TemplateError> {
    ENV.template_from_named_str(name_of(part), source).map(|_| ()).map_err(|e| TemplateError { part, problem: describe(&e) })
}

fn name_of(part: &str) -> &'static str {
    match part {
        "html" => "email.html",
        "subject" => "email.subject",
        _ => "email.txt",
    }
}

fn render_part<V: Serialize>(part: &'static str, source: &str, variables: &V) -> Result<String, TemplateError> {
    ENV.render_named_str(name_of(part), source, variables).map_err(|e| TemplateError { part, problem: describe(&e) })
}

/// Renders a template with the job's variables and lays the HTML out.
pub fn render<V: Serialize>(sources: Sources<'_>, language: &str, variables: &V) -> Result<Rendered, TemplateError> {
    // A subject is one header line: newlines from variables must not split it.
    let subject = one_line(&render_part("subject", sources.subject, variables)?);
    let html = sources.html.map(|html| render_part("html", html, variables)).transpose()?;
    let text = match sources.text {
        Some(text) => render_part("text", text, variables)?,
        None => html.as_deref().map(html_to_text).unwrap_or_default(),
    };
    Ok(Rendered { subject, html: html.map(|body| layout(&body, language)), text })
}

/// A one-off email's own subject and bodies (not templates: sent as given).
pub fn raw(subject: &str, html: Option<&str>, text: Option<&str>, language: &str) -> Rendered {
    let text = match (text, html) {
        (Some(text), _) => text.to_owned(),
        (None, Some(html)) => html_to_text(html),
        (None, None) => String::new(),
    };
    Rendered { subject: one_line(subject), html: html.map(|body| layout(body, language)), text }
}

pub fn one_line(text: &str) -> String {
    text.split(['\r', '\n']).map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Scripts written right to left.
pub fn is_rtl(language: &str) -> bool {
    let primary = language.split(['-', '_']).next().unwrap_or("");
    matches!(primary, "fa" | "ar" | "he" | "ur" | "ps" | "ku" | "ckb" | "yi" | "dv")
}

/// Wraps an HTML fragment in a document whose direction and alignment
/// follow the language (`<html dir="rtl" lang="fa">`, right-aligned, for
/// Persian). A body that already is a whole document is left as it is.
pub fn layout(body: &str, language: &str) -> String {
    let head = body.trim_start().get(..15).unwrap_or("").to_ascii_lowercase();
    if head.starts_with("<!doctype") || head.starts_with("<html") {
        return body.to_owned();
    }
    let (dir, align, fonts) = if is_rtl(language) {
        ("rtl", "right", "Vazirmatn, Tahoma, 'Segoe UI', Arial, sans-serif")
    } else {
        ("ltr", "left", "-apple-system, 'Segoe UI', Roboto, Arial, sans-serif")
    };
    let lang = html_attribute(language);
    format!(
        "<!DOCTYPE html>\n<html dir=\"{dir}\" lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n</head>\n\
         <body dir=\"{dir}\" style=\"margin:0;padding:24px;background:#f6f7f9;\">\n\
         <div style=\"max-width:600px;margin:0 auto;padding:24px;background:#ffffff;border-radius:8px;\
         direction:{dir};text-align:{align};font-family:{fonts};font-size:15px;line-height:1.8;color:#1f2328;\">\n\
         {body}\n</div>\n</body>\n</html>\n"
    )
}

fn html_attribute(text: &str) -> String {
    text.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect()
}

/// A plain-text alternative from HTML, for templates that give none: tags
/// dropped (block ends become line breaks), the common entities decoded.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            rest = &rest[start..];
            break;
        };
        let tag = rest[start + 1..start + end].trim_start_matches('/').to_ascii_lowercase();
        let tag_name = tag.split(|c: char| c.is_whitespace() || c == '/').next().unwrap_or("");
        if matches!(tag_name, "br" | "p" | "div" | "tr" | "li" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "table") {
            out.push('\n');
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&");
    // Collapse runs of blank lines and trim each line.
    let mut lines: Vec<&str> = Vec::new();
    for line in decoded.lines().map(str::trim) {
        if line.is_empty() && lines.last().is_none_or(|l| l.is_empty()) {
            continue;
        }
        lines.push(line);
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_builtin_parses_and_renders_in_both_languages() {
        for (name, language, sources) in &BUILTIN {
            for (part, source) in [("subject", Some(sources.subject)), ("html", sources.html), ("text", sources.text)] {
                check_syntax(part, source.unwrap()).unwrap_or_else(|e| panic!("{name}.{language}: {e}"));
            }
            let rendered = render(*sources, language, &json!({"code": "4821", "date": "1405/09/01", "time": "10:30"})).unwrap();
            assert!(!rendered.subject.is_empty() && !rendered.text.is_empty(), "{name}.{language}");
        }
        for name in builtin_names() {
            assert!(builtin(name, "fa").is_some() && builtin(name, "en").is_some(), "{name} in fa and en");
        }
    }

    #[test]
    fn persian_is_laid_out_right_to_left() {
        let sources = builtin("appointment-reminder", "fa").unwrap();
        let vars = json!({"name": "مریم", "date": "۱۴۰۵/۰۹/۰۱", "time": "۱۰:۳۰", "clinic": "درمانگاه آفتاب"});
        let rendered = render(sources, "fa", &vars).unwrap();
        let html = rendered.html.unwrap();
        assert!(html.contains("<html dir=\"rtl\" lang=\"fa\">"), "{html}");
        assert!(html.contains("text-align:right"));
        assert!(html.contains("مریم") && rendered.text.contains("مریم"));
        assert_eq!(rendered.subject, "یادآوری نوبت درمانگاه آفتاب: ۱۴۰۵/۰۹/۰۱ ساعت ۱۰:۳۰");

        let english = render(builtin("appointment-reminder", "en").unwrap(), "en", &vars).unwrap();
        let html = english.html.unwrap();
        assert!(html.contains("<html dir=\"ltr\" lang=\"en\">") && html.contains("text-align:left"));
    }

    #[test]
    fn html_escapes_variables_but_text_and_subject_do_not() {
        let sources = Sources { subject: "Hi {{ name }}\n!", html: Some("<p>{{ name }}</p>"), text: Some("{{ name }}") };
        let rendered = render(sources, "en", &json!({"name": "<b>Tom & Jerry</b>"})).unwrap();
        assert!(rendered.html.unwrap().contains("<p>&lt;b&gt;Tom &amp; Jerry&lt;&#x2f;b&gt;</p>"));
        assert_eq!(rendered.text, "<b>Tom & Jerry</b>");
        assert_eq!(rendered.subject, "Hi <b>Tom & Jerry</b> !");
    }

    #[test]
    fn text_is_derived_from_html_when_missing() {
        let sources = Sources { subject: "s", html: Some("<h2>Title</h2><p>One &amp; two<br>three</p>"), text: None };
        let rendered = render(sources, "en", &json!({})).unwrap();
        assert_eq!(rendered.text, "Title\n\nOne & two\nthree");
    }

    #[test]
    fn syntax_errors_name_the_part_and_line() {
        let error = check_syntax("html", "<p>\n{% if x %}never closed</p>").unwrap_err();
        assert_eq!(error.part, "html");
        assert!(error.problem.contains("line"), "{}", error.problem);
        assert!(check_syntax("subject", "{{ a }").is_err());
        assert!(check_syntax("text", "{{ a | default('x') }}").is_ok());
    }

    #[test]
    fn endless_templates_run_out_of_fuel() {
        let sources = Sources {
            subject: "s",
            html: None,
            text: Some("{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}"),
        };
        let error = render(sources, "en", &json!({})).unwrap_err();
        assert_eq!(error.part, "text");
    }

    #[test]
    fn whole_documents_are_kept_as_they_are() {
        let doc = "<!DOCTYPE html><html><body>x</body></html>";
        assert_eq!(layout(doc, "fa"), doc);
    }
}
