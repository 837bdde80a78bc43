//! Persian transcripts as Persian readers expect them.
//!
//! Whisper writes Persian with what its training text had: Arabic `ي`/`ك`
//! for Persian `ی`/`ک`, spaces where Persian spelling joins a prefix or
//! suffix with a zero-width non-joiner (ZWNJ, `می شود` for `می‌شود`), Latin
//! `?` and `,`, and digits of any script. Search, spell-checking and readers
//! all stumble on that. The rules follow Hazm's normalizer (the Persian NLP
//! library most projects use; its character, punctuation and affix rules),
//! kept to those that are safe without a dictionary.
//!
//! rust-persian-tools (crates.io) was weighed and not used: its
//! `add_half_space` glues the word after `ام`/`اش` to the suffix (`خانه ام
//! خوب` loses the space before `خوب`) and turns any text that starts with
//! `می` (`میز`, table) into a prefix; its digit helpers are one line each.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Zero-width non-joiner: joins a prefix or suffix to its word without
/// letting the letters connect.
pub const ZWNJ: char = '\u{200C}';

/// The digits a Persian transcript is written with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Digits {
    /// ۰۱۲۳۴۵۶۷۸۹, with `٫` as the decimal and `٬` as the thousands separator.
    #[default]
    Persian,
    /// 0123456789, with `.` and `,`.
    Latin,
}

/// Suffixes written after a ZWNJ, not a space (plural, comparative).
const SUFFIXES: &[&str] = &["ها", "های", "هایی", "هایم", "هایت", "هایش", "هایمان", "هایتان", "هایشان", "تر", "تری", "ترین"];
/// Verb endings and pronouns that join a word ending in `ه` with a ZWNJ
/// (`خسته ام` → `خسته‌ام`); after other letters they are written attached.
const AFTER_HEH: &[&str] = &["ام", "ای", "ایم", "اید", "اند", "ات", "اش", "ی"];
/// Verb prefixes (continuous, its negation) joined to the verb after them.
const PREFIXES: &[&str] = &["می", "نمی"];

/// The whole normalisation: characters and digits, punctuation, then the
/// ZWNJ rules. For running text (a transcript, a segment).
pub fn normalize(text: &str, digits: Digits) -> String {
    join_affixes(&space_punctuation(&characters(text, digits)))
}

/// [`normalize`] for a segment's text, keeping the space Whisper starts
/// each segment with.
pub fn normalize_segment(text: &str, digits: Digits) -> String {
    let leading = if text.starts_with(' ') { " " } else { "" };
    format!("{leading}{}", normalize(text, digits))
}

/// Persian letters for their Arabic look-alikes, no tatweel (the
/// stretching stroke), digits and their separators in one script, and
/// Persian `؟`, `؛` and `،`. Safe for a single word too.
pub fn characters(text: &str, digits: Digits) -> String {
    let chars: Vec<char> = text.chars().collect();
    let is_digit = |i: usize| chars.get(i).is_some_and(|&c| digit_value(c).is_some());
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        let between_digits = i > 0 && is_digit(i - 1) && is_digit(i + 1);
        let mapped = match c {
            'ي' | 'ى' => 'ی',
            'ك' => 'ک',
            'ـ' => continue,
            '?' => '؟',
            ';' => '؛',
            '.' | '٫' if between_digits => decimal_separator(digits),
            ',' | '٬' | '،' if between_digits => thousands_separator(digits),
            ',' => '،',
            c => match digit_value(c) {
                Some(value) => digit(value, digits),
                None => c,
            },
        };
        out.push(mapped);
    }
    out
}

fn digit_value(c: char) -> Option<u32> {
    match c {
        '0'..='9' => Some(c as u32 - '0' as u32),
        '۰'..='۹' => Some(c as u32 - '۰' as u32),
        '٠'..='٩' => Some(c as u32 - '٠' as u32),
        _ => None,
    }
}

fn digit(value: u32, digits: Digits) -> char {
    let zero = match digits {
        Digits::Persian => '۰',
        Digits::Latin => '0',
    };
    char::from_u32(zero as u32 + value).unwrap_or(zero)
}

fn decimal_separator(digits: Digits) -> char {
    match digits {
        Digits::Persian => '٫',
        Digits::Latin => '.',
    }
}

fn thousands_separator(digits: Digits) -> char {
    match digits {
        Digits::Persian => '٬',
        Digits::Latin => ',',
    }
}

/// Marks that follow a word without a space and are followed by one.
fn closes(c: char) -> bool {
    matches!(c, '.' | '،' | '؛' | '؟' | '!' | ':' | ')' | '»' | ']')
}

/// Marks that precede a word without a space.
fn opens(c: char) -> bool {
    matches!(c, '(' | '«' | '[')
}

/// No space before `.`, `،`, `؟`… or after `(`/`«`; one space after
/// closing marks where a word follows; runs of spaces as one.
pub fn space_punctuation(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            let next = chars.peek().copied();
            let before_closing = next.is_some_and(closes);
            let after_opening = out.chars().last().is_some_and(opens);
            if !before_closing && !after_opening && !out.is_empty() && next.is_some() {
                out.push(' ');
            }
            continue;
        }
        out.push(c);
        if closes(c) && chars.peek().is_some_and(|&n| !n.is_whitespace() && !closes(n) && digit_value(n).is_none()) {
            out.push(' ');
        }
    }
    out
}

/// A letter of the Arabic script or one of its vowel marks (`ً` in `واقعاً`).
fn is_persian_letter(c: char) -> bool {
    ('\u{0620}'..='\u{065F}').contains(&c)
        || c == '\u{0670}'
        || ('\u{066E}'..='\u{06D3}').contains(&c)
        || ('\u{06FA}'..='\u{06FF}').contains(&c)
}

/// A token split into leading marks, the word, trailing marks: `(کتاب،`
/// → (`(`, `کتاب`, `،`).
fn parts(token: &str) -> (&str, &str, &str) {
    let start = token.find(|c: char| !opens(c)).unwrap_or(token.len());
    let rest = &token[start..];
    let end = rest.rfind(|c: char| !closes(c)).map_or(0, |i| i + rest[i..].chars().next().map_or(0, char::len_utf8));
    (&token[..start], &rest[..end], &rest[end..])
}

fn is_persian_word(word: &str) -> bool {
    !word.is_empty() && word.chars().all(|c| is_persian_letter(c) || c == ZWNJ)
}

/// Prefixes and suffixes joined to their words with a ZWNJ: `می شود` →
/// `می‌شود`, `کتاب ها` → `کتاب‌ها`, `خسته ام` → `خسته‌ام`, `شنبهها` →
/// `شنبه‌ها`. Only between Persian words, only across one space, and never
/// across punctuation.
pub fn join_affixes(text: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    // Whether the last token may take a suffix: a Persian word of two
    // letters or more with nothing after it.
    let mut open_word = false;
    // Whether the last token is a bare prefix waiting for its verb.
    let mut open_prefix = false;
    for token in text.split(' ') {
        let (lead, word, trail) = parts(token);
        let persian = is_persian_word(word);
        let last = out.last().map(String::as_str).unwrap_or("");
        let joins_suffix =
            open_word && lead.is_empty() && persian && (SUFFIXES.contains(&word) || (last.ends_with('ه') && AFTER_HEH.contains(&word)));
        let joins_prefix = open_prefix && lead.is_empty() && persian;
        if joins_suffix || joins_prefix {
            let previous = out.last_mut().expect("an open word or prefix is a token");
            previous.push(ZWNJ);
            previous.push_str(&split_plural(word));
            previous.push_str(trail);
        } else {
            out.push(format!("{lead}{}{trail}", split_plural(word)));
        }
        let joined_prefix = joins_prefix && trail.is_empty();
        open_prefix = !joined_prefix && persian && trail.is_empty() && PREFIXES.contains(&word) && !joins_suffix;
        open_word = persian && trail.is_empty() && (joins_suffix || joins_prefix || word.chars().count() >= 2) && !open_prefix;
    }
    out.join(" ")
}

/// `شنبهها` → `شنبه‌ها`: a plural suffix written straight after a final
/// `ه` reads as one letter run; Persian spelling separates it.
fn split_plural(word: &str) -> String {
    for suffix in ["ها", "های", "هایی"] {
        if let Some(stem) = word.strip_suffix(suffix) {
            if stem.ends_with('ه') && stem.chars().count() >= 2 {
                return format!("{stem}{ZWNJ}{suffix}");
            }
        }
    }
    word.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(text: &str) -> String {
        normalize(text, Digits::Persian)
    }

    #[test]
    fn arabic_yeh_and_kaf_become_persian() {
        assert_eq!(characters("كيف علي موسى", Digits::Persian), "کیف علی موسی");
    }

    #[test]
    fn tatweel_is_removed() {
        assert_eq!(characters("بـــله", Digits::Persian), "بله");
    }

    #[test]
    fn digits_of_every_script_become_the_chosen_one() {
        assert_eq!(characters("12 ۳۴ ٥٦", Digits::Persian), "۱۲ ۳۴ ۵۶");
        assert_eq!(characters("12 ۳۴ ٥٦", Digits::Latin), "12 34 56");
    }

    #[test]
    fn separators_between_digits_follow_the_digits() {
        assert_eq!(characters("2.5 mg, 1,000", Digits::Persian), "۲٫۵ mg، ۱٬۰۰۰");
        assert_eq!(characters("۲٫۵ و ۱٬۰۰۰", Digits::Latin), "2.5 و 1,000");
        // A full stop after a number ends the sentence.
        assert_eq!(characters("ساعت 5.", Digits::Persian), "ساعت ۵.");
    }

    #[test]
    fn latin_question_mark_semicolon_and_comma_become_persian() {
        assert_eq!(characters("چطور?; خوب, ممنون", Digits::Persian), "چطور؟؛ خوب، ممنون");
    }

    #[test]
    fn no_space_before_closing_marks_and_one_after() {
        assert_eq!(space_punctuation("سلام ، خوبی ؟بله .تمام"), "سلام، خوبی؟ بله. تمام");
        assert_eq!(space_punctuation("« درد »  دارد ( کم )"), "«درد» دارد (کم)");
        assert_eq!(space_punctuation("چی؟!  واقعاً..."), "چی؟! واقعاً...");
    }

    #[test]
    fn mi_and_nemi_join_their_verb() {
        assert_eq!(n("درد می کند و نمی خوابد"), "درد می\u{200c}کند و نمی\u{200c}خوابد");
        assert_eq!(n("می شود"), "می\u{200c}شود");
    }

    #[test]
    fn words_that_start_like_a_prefix_are_left_alone() {
        assert_eq!(n("میز بیمار"), "میز بیمار");
        assert_eq!(n("میوه می خورد"), "میوه می\u{200c}خورد");
    }

    #[test]
    fn a_prefix_before_punctuation_or_latin_stays_apart() {
        assert_eq!(n("می، شود"), "می، شود");
        assert_eq!(n("می MRI"), "می MRI");
    }

    #[test]
    fn plural_and_comparative_suffixes_join_with_zwnj() {
        assert_eq!(n("کتاب ها و قرص های جدید بهتر ترین"), "کتاب\u{200c}ها و قرص\u{200c}های جدید بهتر\u{200c}ترین");
        assert_eq!(n("درد کم تر شد"), "درد کم\u{200c}تر شد");
    }

    #[test]
    fn a_suffix_keeps_the_punctuation_after_it() {
        assert_eq!(n("دارو ها، آزمایش ها."), "دارو\u{200c}ها، آزمایش\u{200c}ها.");
    }

    #[test]
    fn endings_join_a_word_that_ends_in_heh_and_keep_the_next_space() {
        assert_eq!(n("من خسته ام خیلی"), "من خسته\u{200c}ام خیلی");
        assert_eq!(n("خانه اش دور است"), "خانه\u{200c}اش دور است");
        assert_eq!(n("نامه ی دکتر"), "نامه\u{200c}ی دکتر");
        // After other letters these are separate words.
        assert_eq!(n("او ای کاش"), "او ای کاش");
    }

    #[test]
    fn a_plural_written_attached_after_heh_is_separated() {
        assert_eq!(n("شنبهها و نامههای او"), "شنبه\u{200c}ها و نامه\u{200c}های او");
        assert_eq!(n("تنها"), "تنها");
    }

    #[test]
    fn latin_text_and_numbers_pass_through() {
        assert_eq!(n("MRI of the knee, 2 views"), "MRI of the knee، ۲ views");
        assert_eq!(normalize("dose 2.5 mg", Digits::Latin), "dose 2.5 mg");
    }

    #[test]
    fn a_whole_sentence() {
        assert_eq!(
            n("بيمار مي گويد كه سردرد ها از 3 روز پيش شروع شده اند ?"),
            "بیمار می\u{200c}گوید که سردرد\u{200c}ها از ۳ روز پیش شروع شده\u{200c}اند؟"
        );
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        let once = n("کتاب ها ، مي شود 12.5");
        assert_eq!(n(&once), once);
    }
}
