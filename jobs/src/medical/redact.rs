//! Removes identifiers from text before it leaves for a third-party LLM:
//! phone numbers (Iranian mobiles and landlines in any common form),
//! e-mail addresses, Iranian national ids (10 digits with a valid check
//! digit) and the patient's name when the job gives it.
//!
//! Digits may be ASCII, Persian (`۰–۹`) or Arabic-Indic (`٠–٩`), and numbers
//! may be split by spaces, dashes, dots or parentheses (`0912 123 4567`,
//! `(021) 8888-1234`, `۰۰۱-۲۳۴۵۶۷-۸`). Each finding becomes a placeholder
//! (`[PHONE]`, `[EMAIL]`, `[NATIONAL_ID]`, `[NAME]`) that the model is told
//! to keep, so the answer still reads naturally.
//!
//! It errs on the side of removing: an 11-digit number that looks like a
//! landline goes even if it was a record number. Medical values (doses,
//! blood pressure `120/80`, dates `1402/05/12`, temperatures `38.5`) are too
//! short or separated by `/` and stay.

use serde::Serialize;

use crate::sms::phone::{ascii_digits, normalize_mobile};

/// How many of each kind were removed (recorded in the job's result).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub phone: u32,
    pub email: u32,
    pub national_id: u32,
    pub name: u32,
}

impl Counts {
    pub fn total(&self) -> u32 {
        self.phone + self.email + self.national_id + self.name
    }
}

/// Everything this module removes, in the order it must: e-mails first
/// (they may hold digits), then numbers, then names.
pub fn redact(text: &str, names: &[String], counts: &mut Counts) -> String {
    let text = redact_emails(text, counts);
    let text = redact_numbers(&text, counts);
    redact_names(&text, names, counts)
}

/// An Iranian national id (کد ملی): ten digits, the last a check digit over
/// the first nine with weights 10..2; codes of one repeated digit are invalid.
pub fn valid_national_id(digits: &str) -> bool {
    let d = digits.as_bytes();
    if d.len() != 10 || !d.iter().all(u8::is_ascii_digit) || d.iter().all(|c| *c == d[0]) {
        return false;
    }
    let sum: u32 = (0..9).map(|i| (d[i] - b'0') as u32 * (10 - i as u32)).sum();
    let (r, check) = (sum % 11, (d[9] - b'0') as u32);
    if r < 2 {
        check == r
    } else {
        check == 11 - r
    }
}

fn digit(c: char) -> bool {
    c.is_ascii_digit() || ('۰'..='۹').contains(&c) || ('٠'..='٩').contains(&c)
}

fn separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{200c}' | '\u{a0}' | '\u{2010}'..='\u{2015}')
}

/// Words that, shortly before an 8-digit number, say it is a local phone
/// number without its area code (which would otherwise be left alone).
const PHONE_WORDS: &[&str] = &["tel", "phone", "call", "تلفن", "تماس", "شماره", "تلفن‌"];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Phone,
    NationalId,
}

/// What a run of digits (ASCII, separators removed) is, if anything.
fn classify(digits: &str, plus: bool, phone_word_before: bool) -> Option<Kind> {
    if !plus && valid_national_id(digits) {
        return Some(Kind::NationalId);
    }
    let written = if plus { format!("+{digits}") } else { digits.to_string() };
    if normalize_mobile(&written).is_some() {
        return Some(Kind::Phone);
    }
    // Landlines: 0 + area code (11–87, first digit 1–8) + 8 digits, or the
    // same after +98 / 0098 / 98.
    let national = if plus {
        digits.strip_prefix("98")
    } else if let Some(rest) = digits.strip_prefix("0098") {
        Some(rest)
    } else if digits.len() == 12 && digits.starts_with("98") {
        Some(&digits[2..])
    } else {
        digits.strip_prefix('0')
    };
    if national.is_some_and(|n| n.len() == 10 && matches!(n.as_bytes()[0], b'1'..=b'8')) {
        return Some(Kind::Phone);
    }
    // A local number with no area code, only when the text says it is one.
    (!plus && phone_word_before && digits.len() == 8 && !digits.starts_with('0')).then_some(Kind::Phone)
}

/// A maximal run of digits: where it starts and ends (char indices, end
/// exclusive) and its ASCII digits.
struct Group {
    start: usize,
    end: usize,
    digits: String,
}

fn redact_numbers(text: &str, counts: &mut Counts) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !digit(chars[i]) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // Digit groups joined by at most 3 separator characters.
        let mut groups: Vec<Group> = Vec::new();
        let mut k = i;
        loop {
            let start = k;
            while k < chars.len() && digit(chars[k]) {
                k += 1;
            }
            groups.push(Group { start, end: k, digits: ascii_digits(&chars[start..k].iter().collect::<String>()) });
            let mut s = k;
            while s < chars.len() && s - k < 3 && separator(chars[s]) {
                s += 1;
            }
            if s > k && s < chars.len() && digit(chars[s]) {
                k = s;
            } else {
                break;
            }
        }
        let run_end = groups.last().map(|g| g.end).unwrap_or(i);
        // Within the run, take the longest stretch of whole groups that is
        // a phone number or national id, then go on after it.
        let mut copied = i;
        let mut g = 0;
        while g < groups.len() {
            // A `+` can only come before the run (it is not a separator).
            let mut plus = if g == 0 { plus_before(&chars, groups[g].start) } else { None };
            let before: String = chars[groups[g].start.saturating_sub(25)..groups[g].start].iter().collect::<String>().to_lowercase();
            let phone_word = PHONE_WORDS.iter().any(|w| before.contains(w));
            let mut found = None;
            for last in (g..groups.len().min(g + 6)).rev() {
                let joined: String = groups[g..=last].iter().map(|x| x.digits.as_str()).collect();
                if let Some(kind) = classify(&joined, plus.is_some(), phone_word) {
                    found = Some((last, kind));
                    break;
                }
                // A stray `+` (e.g. `+0912…`): the digits may still be a number.
                if let Some(kind) = plus.and_then(|_| classify(&joined, false, phone_word)) {
                    plus = None;
                    found = Some((last, kind));
                    break;
                }
            }
            if let Some((last, kind)) = found {
                let start = groups[g].start;
                out.extend(&chars[copied..start]);
                // The `+` (and a space after it) went out before the run: take them back.
                if let Some(p) = plus {
                    for _ in p..start {
                        out.pop();
                    }
                } else if g == 0 && start > 0 && chars[start - 1] == '(' && chars[start..groups[last].end].contains(&')') {
                    // `(021) 8888 1234`: the area code's parenthesis goes too.
                    out.pop();
                }
                out.push_str(match kind {
                    Kind::Phone => "[PHONE]",
                    Kind::NationalId => "[NATIONAL_ID]",
                });
                match kind {
                    Kind::Phone => counts.phone += 1,
                    Kind::NationalId => counts.national_id += 1,
                }
                copied = groups[last].end;
                g = last + 1;
            } else {
                g += 1;
            }
        }
        out.extend(&chars[copied..run_end]);
        i = run_end;
    }
    out
}

/// The index of a `+` written just before `start` (maybe after a space).
fn plus_before(chars: &[char], start: usize) -> Option<usize> {
    match start {
        s if s >= 1 && chars[s - 1] == '+' => Some(s - 1),
        s if s >= 2 && chars[s - 1] == ' ' && chars[s - 2] == '+' => Some(s - 2),
        _ => None,
    }
}

fn email_local(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-')
}

fn email_domain(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-')
}

fn redact_emails(text: &str, counts: &mut Counts) -> String {
    if !text.contains('@') {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for at in 0..chars.len() {
        if chars[at] != '@' || at < copied {
            continue;
        }
        let mut start = at;
        while start > copied && email_local(chars[start - 1]) {
            start -= 1;
        }
        let mut end = at + 1;
        while end < chars.len() && email_domain(chars[end]) {
            end += 1;
        }
        // A sentence's full stop is not part of the domain.
        while end > at + 1 && matches!(chars[end - 1], '.' | '-') {
            end -= 1;
        }
        let domain: String = chars[at + 1..end].iter().collect();
        let tld_ok = domain
            .rsplit_once('.')
            .is_some_and(|(host, tld)| !host.is_empty() && tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
        if start == at || !tld_ok {
            continue;
        }
        out.extend(&chars[copied..start]);
        out.push_str("[EMAIL]");
        counts.email += 1;
        copied = end;
    }
    out.extend(&chars[copied..]);
    out
}

/// Case-insensitive, and Arabic forms of Persian letters (ي ك ى) match.
fn fold(c: char) -> char {
    match c {
        'ي' | 'ى' => 'ی',
        'ك' => 'ک',
        _ => c.to_lowercase().next().unwrap_or(c),
    }
}

/// The full name and each of its words of two letters or more, longest
/// first, matched as whole words.
fn redact_names(text: &str, names: &[String], counts: &mut Counts) -> String {
    let mut needles: Vec<Vec<char>> = Vec::new();
    for name in names {
        let name = name.trim();
        needles.push(name.chars().map(fold).collect());
        needles.extend(name.split_whitespace().filter(|w| w.chars().count() >= 2).map(|w| w.chars().map(fold).collect()));
    }
    needles.retain(|n| n.len() >= 2);
    if needles.is_empty() {
        return text.to_string();
    }
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    needles.dedup();
    let chars: Vec<char> = text.chars().collect();
    let folded: Vec<char> = chars.iter().map(|c| fold(*c)).collect();
    let word = |i: usize| chars.get(i).is_some_and(|c| c.is_alphanumeric());
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let at_boundary = i == 0 || !word(i - 1);
        let hit = at_boundary.then(|| needles.iter().find(|n| folded[i..].starts_with(n) && !word(i + n.len()))).flatten();
        match hit {
            Some(needle) => {
                out.push_str("[NAME]");
                counts.name += 1;
                i += needle.len();
            }
            None => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, names: &[&str]) -> (String, Counts) {
        let mut counts = Counts::default();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        (redact(text, &names, &mut counts), counts)
    }

    #[test]
    fn national_id_check_digits() {
        for valid in ["0013542419", "0499370899", "2914177763", "3740681241", "6907366258", "8836075983"] {
            assert!(valid_national_id(valid), "{valid}");
        }
        for invalid in ["0013542418", "0499370898", "1111111111", "0000000000", "123456789", "12345678901", "001354241a"] {
            assert!(!valid_national_id(invalid), "{invalid}");
        }
    }

    #[test]
    fn phones_in_every_form_and_script() {
        for (text, expected) in [
            ("call 09121234567 today", "call [PHONE] today"),
            ("mobile: +98 912 123 4567.", "mobile: [PHONE]."),
            ("0098-912-123-4567", "[PHONE]"),
            ("شماره همراه ۰۹۱۲۱۲۳۴۵۶۷ است", "شماره همراه [PHONE] است"),
            ("شماره همراه ٠٩١٢١٢٣٤٥٦٧ است", "شماره همراه [PHONE] است"),
            ("تلفن منزل (۰۲۱) ۸۸۸۸-۱۲۳۴", "تلفن منزل [PHONE]"),
            ("landline 021 8888 1234 and mobile 0935-123-4567", "landline [PHONE] and mobile [PHONE]"),
            ("office +98 21 8888 1234", "office [PHONE]"),
            ("تلفن: ۸۸۸۸۱۲۳۴", "تلفن: [PHONE]"),
            ("aged 45 0912 123 4567", "aged 45 [PHONE]"),
        ] {
            let (redacted, counts) = run(text, &[]);
            assert_eq!(redacted, expected, "{text}");
            assert!(counts.phone >= 1, "{text}");
        }
    }

    #[test]
    fn medical_numbers_stay() {
        for text in [
            "BP 120/80, HR 72, temp 38.5, metformin 500 mg twice daily",
            "فشار خون ۱۲۰/۸۰، قند ناشتا ۱۲۶، تاریخ ۱۴۰۲/۰۵/۱۲",
            "WBC 12000, platelets 250000, 8 tablets",
            "lab value 12345678 without context",
            "national id 0013542418 has a wrong check digit",
        ] {
            let (redacted, counts) = run(text, &[]);
            assert_eq!(redacted, text);
            assert_eq!(counts, Counts::default());
        }
    }

    #[test]
    fn national_ids_in_any_digits() {
        let (r, c) = run("کد ملی ۰۰۱۳۵۴۲۴۱۹ و کد ملی مادر ٠٤٩٩٣٧٠٨٩٩", &[]);
        assert_eq!(r, "کد ملی [NATIONAL_ID] و کد ملی مادر [NATIONAL_ID]");
        assert_eq!(c.national_id, 2);
        let (r, _) = run("ID 001-354241-9, file 2914177763.", &[]);
        assert_eq!(r, "ID [NATIONAL_ID], file [NATIONAL_ID].");
    }

    #[test]
    fn emails() {
        let (r, c) = run("Write to ali.rezaei+clinic@example.co.ir. Or info@clinic.com, not @handle or a@b.", &[]);
        assert_eq!(r, "Write to [EMAIL]. Or [EMAIL], not @handle or a@b.");
        assert_eq!(c.email, 2);
        let (r, _) = run("ایمیل بیمار: patient1990@gmail.com است", &[]);
        assert_eq!(r, "ایمیل بیمار: [EMAIL] است");
    }

    #[test]
    fn names_persian_and_english() {
        let (r, c) = run("بیمار علی رضایی ۴۵ ساله است. آقای رضايي از سرفه شکایت دارد.", &["علی رضایی"]);
        assert_eq!(r, "بیمار [NAME] ۴۵ ساله است. آقای [NAME] از سرفه شکایت دارد.");
        assert_eq!(c.name, 2);
        let (r, _) = run("Mrs. Sara Ahmadi says SARA has had fever; Sarah is her sister.", &["Sara Ahmadi"]);
        assert_eq!(r, "Mrs. [NAME] says [NAME] has had fever; Sarah is her sister.");
    }

    #[test]
    fn odd_inputs_do_not_break_it() {
        for text in [
            "",
            "+",
            "++",
            "+ ",
            "(",
            ")",
            "@",
            "a@",
            "@b.co",
            "x@y",
            "۰",
            "+ ۹۸",
            "0912 123 4567 ",
            "(۰۲۱",
            "0-0-0-0-0-0-0-0-0-0-0",
            "۱۱۱۱۱۱۱۱۱۱",
        ] {
            let (redacted, _) = run(text, &["", " ", "a"]);
            assert!(redacted.len() <= text.len() + 20, "{text}");
        }
        assert_eq!(run("12+09121234567", &[]).0, "12+[PHONE]");
    }

    #[test]
    fn everything_together() {
        let text = "بیمار: مریم کریمی، کد ملی ۰۴۹۹۳۷۰۸۹۹، موبایل ۰۹۳۵ ۱۲۳ ۴۵۶۷، ایمیل maryam@mail.ir. درد قفسه سینه از دیروز، فشار ۱۴۰/۹۰.";
        let (r, c) = run(text, &["مریم کریمی"]);
        assert_eq!(r, "بیمار: [NAME]، کد ملی [NATIONAL_ID]، موبایل [PHONE]، ایمیل [EMAIL]. درد قفسه سینه از دیروز، فشار ۱۴۰/۹۰.");
        assert_eq!(c, Counts { phone: 1, email: 1, national_id: 1, name: 1 });
        assert_eq!(c.total(), 4);
    }
}
