//! Iranian mobile numbers as people write them, turned into the one form
//! Kavenegar (and our rate limits) key on: `09` followed by nine digits.
//!
//! Accepted: `09121234567`, `9121234567`, `+989121234567`, `00989121234567`,
//! `989121234567`, with spaces, dashes, dots or parentheses anywhere, and
//! with Persian (`۰–۹`) or Arabic-Indic (`٠–٩`) digits. Anything else
//! (landlines, other countries, too few or too many digits) is refused: a
//! message to a number that cannot receive it costs money and never arrives.

use serde::{Deserialize, Serialize};

/// An Iranian mobile number in a payload, as the client wrote it until the
/// job is validated (which names each bad one) and normalised (which stores
/// it as `09XXXXXXXXX`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, example = "09121234567")]
pub struct Mobile(pub String);

impl Mobile {
    /// Adds an error for `field` unless this is an Iranian mobile number.
    pub fn check(&self, field: impl Into<String>, errors: &mut crate::ValidationErrors) {
        if normalize_mobile(&self.0).is_none() {
            errors.add(field, format!("`{}` is not an Iranian mobile number (09XXXXXXXXX, +989XXXXXXXXX, 00989XXXXXXXXX)", self.0));
        }
    }

    pub fn normalize(&mut self) {
        if let Some(normal) = normalize_mobile(&self.0) {
            self.0 = normal;
        }
    }
}

/// Persian and Arabic-Indic digits as ASCII; other characters unchanged.
pub fn ascii_digits(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '۰'..='۹' => char::from(b'0' + (c as u32 - '۰' as u32) as u8),
            '٠'..='٩' => char::from(b'0' + (c as u32 - '٠' as u32) as u8),
            _ => c,
        })
        .collect()
}

/// The number as `09XXXXXXXXX`, or `None` if it is not an Iranian mobile
/// number.
pub fn normalize_mobile(raw: &str) -> Option<String> {
    let text = ascii_digits(raw.trim());
    let (plus, rest) = match text.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    // Separators people type; any other character makes it not a number.
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' | '\u{200c}' | '\u{a0}' => {}
            _ => return None,
        }
    }
    let national = if plus {
        digits.strip_prefix("98")?
    } else if let Some(rest) = digits.strip_prefix("0098") {
        rest
    } else if digits.len() == 12 {
        digits.strip_prefix("98")?
    } else if let Some(rest) = digits.strip_prefix('0') {
        rest
    } else {
        digits.as_str()
    };
    // Mobile numbers are 9XXXXXXXXX nationally.
    (national.len() == 10 && national.starts_with('9')).then(|| format!("0{national}"))
}

/// Only the last four digits, for logs and error messages that must not
/// carry whole phone numbers.
pub fn masked(number: &str) -> String {
    let tail: String = number.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_common_form_becomes_09() {
        for raw in [
            "09121234567",
            "9121234567",
            "+989121234567",
            "00989121234567",
            "989121234567",
            "0912 123 4567",
            "0912-123-4567",
            "+98 (912) 123-4567",
            "۰۹۱۲۱۲۳۴۵۶۷",
            "٠٩١٢١٢٣٤٥٦٧",
            "+۹۸ ۹۱۲ ۱۲۳ ۴۵۶۷",
            " 0912.123.4567 ",
        ] {
            assert_eq!(normalize_mobile(raw).as_deref(), Some("09121234567"), "{raw}");
        }
    }

    #[test]
    fn other_numbers_are_refused() {
        for raw in [
            "",
            "02112345678",      // Tehran landline
            "0912123456",       // a digit short
            "091212345678",     // a digit long
            "+4915112345678",   // Germany
            "+98 21 1234 5678", // landline with the country code
            "0912123456a",
            "0098 0912 123 4567",
            "++989121234567",
            "09121234567;09121234568",
        ] {
            assert_eq!(normalize_mobile(raw), None, "{raw}");
        }
    }

    #[test]
    fn digits_and_masking() {
        assert_eq!(ascii_digits("کد ۱۲۳ و ٤٥٦"), "کد 123 و 456");
        assert_eq!(masked("09121234567"), "…4567");
    }
}
