//! Email addresses as the `email` job accepts them, checked without lettre
//! so that `peyk-api` (which validates jobs but never sends mail) does not
//! link it. The worker still parses them with lettre's `Mailbox` when it
//! builds the message, so this must accept exactly what lettre accepts:
//! it is a copy of lettre 0.11.23's mailbox grammar (RFC 5322 with the
//! obsolete forms, UTF-8 per RFC 6532; `message/mailbox/parsers/`, MIT
//! licence) followed by lettre's address rules (`email_address`'s local
//! part and domain, IDNA, IP literals). The test at the end compares the
//! two on generated input.

use std::net::IpAddr;

use email_address::EmailAddress;
use nom::branch::alt;
use nom::bytes::complete::take_while;
use nom::character::complete::{char, one_of, satisfy};
use nom::combinator::{eof, map, opt, recognize};
use nom::multi::{fold_many0, many0, many1};
use nom::sequence::{delimited, pair, preceded, separated_pair, terminated};
use nom::{IResult, Parser};

/// Why an address is refused, in lettre's words (the API's error message
/// quotes it, as it did when lettre checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressError {
    InvalidInput,
    InvalidUser,
    InvalidDomain,
}

impl std::fmt::Display for AddressError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AddressError::InvalidInput => "Invalid input",
            AddressError::InvalidUser => "Invalid email user",
            AddressError::InvalidDomain => "Invalid email domain",
        })
    }
}

/// Checks `Name <user@domain>` or `user@domain` as lettre's
/// `Mailbox::from_str` would.
pub fn check_mailbox(text: &str) -> Result<(), AddressError> {
    let (_rest, (_name, (user, domain))) = mailbox(text).map_err(|_| AddressError::InvalidInput)?;
    check_user(&user)?;
    check_domain(&domain)
}

fn check_user(user: &str) -> Result<(), AddressError> {
    if EmailAddress::is_valid_local_part(user) {
        Ok(())
    } else {
        Err(AddressError::InvalidUser)
    }
}

fn check_domain(domain: &str) -> Result<(), AddressError> {
    check_domain_ascii(domain)
        .or_else(|_| idna::domain_to_ascii(domain).map_err(|_| AddressError::InvalidDomain).and_then(|domain| check_domain_ascii(&domain)))
}

fn check_domain_ascii(domain: &str) -> Result<(), AddressError> {
    if EmailAddress::is_valid_domain(domain) {
        return Ok(());
    }
    let ip = domain.strip_prefix('[').and_then(|ip| ip.strip_suffix(']')).unwrap_or(domain);
    if ip.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    Err(AddressError::InvalidDomain)
}

// ---- lettre's grammar (rfc2234, rfc2822 and rfc5336 parsers) ----

type Mailbox = (Option<String>, (String, String));

fn alpha(input: &str) -> IResult<&str, char> {
    satisfy(|c| c.is_ascii_alphabetic()).parse(input)
}

fn digit(input: &str) -> IResult<&str, char> {
    satisfy(|c| c.is_ascii_digit()).parse(input)
}

fn dquote(input: &str) -> IResult<&str, char> {
    char('"').parse(input)
}

fn wsp(input: &str) -> IResult<&str, char> {
    alt((char(' '), char('\t'))).parse(input)
}

fn utf8_non_ascii(input: &str) -> IResult<&str, char> {
    satisfy(|c| c.len_utf8() > 1).parse(input)
}

fn no_ws_ctl(input: &str) -> IResult<&str, char> {
    satisfy(|c| matches!(u32::from(c), 1..=8 | 11 | 12 | 14..=31 | 127)).parse(input)
}

fn text(input: &str) -> IResult<&str, char> {
    satisfy(|c| matches!(u32::from(c), 1..=9 | 11 | 12 | 14..=127)).parse(input)
}

fn quoted_pair(input: &str) -> IResult<&str, char> {
    preceded(char('\\'), text).parse(input)
}

fn fws(input: &str) -> IResult<&str, Option<char>> {
    terminated(opt(wsp), take_while(|c| c == ' ' || c == '\t')).parse(input)
}

fn cfws(input: &str) -> IResult<&str, Option<char>> {
    fws(input)
}

fn atext(input: &str) -> IResult<&str, char> {
    alt((alpha, digit, one_of("!#$%&'*+-/=?^_`{|}~"), utf8_non_ascii)).parse(input)
}

fn atom(input: &str) -> IResult<&str, String> {
    preceded(cfws, map(recognize(many1(atext)), str::to_owned)).parse(input)
}

fn dot_atom(input: &str) -> IResult<&str, String> {
    preceded(cfws, dot_atom_text).parse(input)
}

fn dot_atom_text(input: &str) -> IResult<&str, String> {
    map(recognize(pair(many1(atext), many0(pair(char('.'), many1(atext))))), str::to_owned).parse(input)
}

fn qtext(input: &str) -> IResult<&str, char> {
    alt((satisfy(|c| matches!(u32::from(c), 33 | 35..=91 | 93..=126)), no_ws_ctl)).parse(input)
}

fn qcontent(input: &str) -> IResult<&str, char> {
    alt((qtext, quoted_pair, utf8_non_ascii)).parse(input)
}

fn quoted_string(input: &str) -> IResult<&str, String> {
    delimited(
        dquote,
        fold_many0(pair(fws, qcontent), String::new, |mut acc, (ws, c)| {
            if let Some(ws_char) = ws {
                acc.push(ws_char);
            }
            acc.push(c);
            acc
        }),
        preceded(fws, dquote),
    )
    .parse(input)
}

fn word(input: &str) -> IResult<&str, String> {
    alt((quoted_string, atom)).parse(input)
}

fn phrase(input: &str) -> IResult<&str, String> {
    alt((obs_phrase, map(many1(word), |words| words.join(" ")))).parse(input)
}

fn mailbox(input: &str) -> IResult<&str, Mailbox> {
    delimited(
        take_while(char::is_whitespace),
        alt((name_addr, map(addr_spec, |addr| (None, addr)))),
        (take_while(char::is_whitespace), eof),
    )
    .parse(input)
}

fn name_addr(input: &str) -> IResult<&str, Mailbox> {
    pair(opt(phrase), angle_addr).parse(input)
}

fn angle_addr(input: &str) -> IResult<&str, (String, String)> {
    delimited((cfws, char('<')), addr_spec, (char('>'), cfws)).parse(input)
}

fn addr_spec(input: &str) -> IResult<&str, (String, String)> {
    separated_pair(local_part, char('@'), domain).parse(input)
}

fn local_part(input: &str) -> IResult<&str, String> {
    alt((dot_atom, quoted_string, obs_local_part)).parse(input)
}

fn domain(input: &str) -> IResult<&str, String> {
    alt((dot_atom, obs_domain)).parse(input)
}

fn obs_phrase(input: &str) -> IResult<&str, String> {
    map(pair(word, many0(pair(opt(fws), alt((word, map(char('.'), |c| c.to_string())))))), |(mut result, rest)| {
        for (ws, part) in rest {
            if ws.flatten().is_some() {
                result.push(' ');
            }
            result.push_str(&part);
        }
        result
    })
    .parse(input)
}

fn obs_local_part(input: &str) -> IResult<&str, String> {
    map(pair(word, many0(pair(char('.'), word))), |(mut result, rest)| {
        for (_, word) in rest {
            result.push('.');
            result.push_str(&word);
        }
        result
    })
    .parse(input)
}

fn obs_domain(input: &str) -> IResult<&str, String> {
    map(pair(atom, many0(pair(char('.'), atom))), |(mut result, rest)| {
        for (_, atom) in rest {
            result.push('.');
            result.push_str(&atom);
        }
        result
    })
    .parse(input)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use lettre::message::Mailbox as LettreMailbox;

    use super::*;

    /// lettre's answer: `Ok` or its error's text.
    fn lettre(text: &str) -> Result<(), String> {
        LettreMailbox::from_str(text).map(|_| ()).map_err(|e| e.to_string())
    }

    fn ours(text: &str) -> Result<(), String> {
        check_mailbox(text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_forms_users_send_are_accepted_or_refused_as_lettre_does() {
        let accepted = [
            "ali@example.com",
            "Ali Rezaei <ali@example.com>",
            "\"Rezaei, Ali\" <ali@example.com>",
            "علی رضایی <ali@example.com>",
            "Dr. Ali <ali@example.com>",
            "<ali@example.com>",
            "ali+tag@mail.example.co.ir",
            "ali@ایران.ایران",
        ];
        for text in accepted {
            assert_eq!(ours(text), Ok(()), "{text}");
            assert_eq!(lettre(text), Ok(()), "{text}");
        }
        let refused = [
            "",
            "ali",
            "ali@",
            "@example.com",
            "ali@@example.com",
            "Ali <ali@example.com",
            "ali@exa mple.com",
            "a..b@example.com",
            "ali@[127.0.0.1]",
            "\"a b\"@example.com",
        ];
        for text in refused {
            assert!(ours(text).is_err(), "{text}");
            assert_eq!(ours(text), lettre(text), "{text}");
        }
    }

    /// Random strings over the characters that matter to the grammar, and
    /// random mailboxes built from them: both parsers must give the same
    /// answer (and the same error) for every one.
    #[test]
    fn generated_input_gets_lettres_answer() {
        const PIECES: &[&str] = &[
            "a",
            "Z",
            "7",
            ".",
            "@",
            "<",
            ">",
            "\"",
            "\\",
            " ",
            "\t",
            ",",
            ";",
            ":",
            "(",
            ")",
            "[",
            "]",
            "-",
            "_",
            "+",
            "!",
            "#",
            "~",
            "ی",
            "ع",
            "۱",
            "\u{200c}",
            "é",
            "\n",
            "\r",
            "\u{7f}",
            "\u{1}",
            "example",
            "com",
            "ir",
            "127.0.0.1",
            "::1",
            "xn--",
            "ali",
        ];
        // Mostly these in the structured rounds, so that many are accepted.
        const PLAIN: &[&str] = &["a", "Z", "7", ".", "-", "_", "+", "ی", "ع", "example", "com", "ir", "ali", " "];
        // xorshift64*: reproducible, no dependency.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut below = move |bound: usize| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % bound
        };
        let pieces = |count: usize, below: &mut dyn FnMut(usize) -> usize| -> String {
            (0..count)
                .map(|_| {
                    let from = if below(4) == 0 { PIECES } else { PLAIN };
                    from[below(from.len())]
                })
                .collect()
        };
        let mut agreed = (0, 0);
        for round in 0..40_000 {
            let mut part = |most: usize, least: usize| {
                let count = least + below(most);
                pieces(count, &mut below)
            };
            let text = match round % 3 {
                0 => (0..1 + below(12)).map(|_| PIECES[below(PIECES.len())]).collect(),
                1 => format!("{}@{}", part(4, 1), part(4, 1)),
                _ => format!("{} <{}@{}>", part(4, 0), part(3, 1), part(3, 1)),
            };
            let (a, b) = (ours(&text), lettre(&text));
            assert_eq!(a, b, "{text:?}");
            if a.is_ok() {
                agreed.0 += 1;
            } else {
                agreed.1 += 1;
            }
        }
        // Both kinds of answer were exercised, not only refusals.
        assert!(agreed.0 > 1000 && agreed.1 > 1000, "accepted {}, refused {}", agreed.0, agreed.1);
    }
}
