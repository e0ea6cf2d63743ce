//! Humane durations: `"500ms"`, `"30s"`, `"10m"`, `"1h30m"`, `"1.5h"`,
//! `"2d"`, `"2 min 5 s"`.
//!
//! A duration is one or more `<number><unit>` terms, spaces allowed around
//! them; the number has digits and at most one `.`. Arithmetic is exact
//! (decimal, in nanoseconds, no floating point), so `"0.3s"` is 300 ms
//! exactly and a text means the same wherever it is read.

use std::fmt;
use std::time::Duration;

/// What a duration error tells the user to write.
pub const DURATION_EXAMPLES: &str =
    "write a duration such as \"500ms\", \"30s\", \"10m\", \"1h30m\" or \"2d\"";

/// The units of time: the names each is written with, the short name (the
/// first), and its length in nanoseconds.
const UNITS: &[(&[&str], u64)] = &[
    (&["ms"], 1_000_000),
    (&["s", "sec", "secs"], 1_000_000_000),
    (&["m", "min", "mins"], 60_000_000_000),
    (&["h", "hr", "hrs"], 3_600_000_000_000),
    (&["d", "day", "days"], 86_400_000_000_000),
];

/// The shortest duration: what is sent to workers is whole milliseconds.
const LEAST: Duration = Duration::from_millis(1);

/// The longest duration, in days: no time limit, wall time or silence limit
/// is longer, and every instant it is added to stays far from overflow.
///
/// ```
/// use futurize_units::{LONGEST_DAYS, parse_duration};
/// assert!(parse_duration(&format!("{LONGEST_DAYS}d")).is_ok());
/// assert!(parse_duration(&format!("{}d", LONGEST_DAYS + 1)).is_err());
/// ```
pub const LONGEST_DAYS: u64 = 365;

/// [`LONGEST_DAYS`] as a [`Duration`].
const LONGEST: Duration = Duration::from_secs(LONGEST_DAYS * 86_400);

/// Fraction digits read; later ones are far below a nanosecond in every unit.
const FRACTION_DIGITS: usize = 24;

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DurationError {
    /// Nothing but spaces.
    Empty,
    /// A term does not start with a number (`"ten minutes"`, `"1..2s"`);
    /// the whole text.
    NotADuration(String),
    /// A number without a unit (`"10"`); the whole text.
    NoUnit(String),
    /// A unit that is not one of time (`"5 weeks"`); the unit as written.
    UnknownUnit(String),
    /// Less than 1 ms in all (`"0s"`).
    TooShort,
    /// More than [`LONGEST_DAYS`] days; the whole text.
    TooLong(String),
}

impl DurationError {
    /// The message, with `subject` (such as ``"`timeout`"``) naming the
    /// text where the message is about the whole of it.
    ///
    /// ```
    /// use futurize_units::parse_duration;
    /// let e = parse_duration("").unwrap_err();
    /// assert!(e.message("`timeout`").starts_with("`timeout` is empty: write a duration"));
    /// ```
    pub fn message(&self, subject: &str) -> String {
        let what = match self {
            DurationError::Empty => format!("{subject} is empty"),
            DurationError::NotADuration(text) => format!("`{text}` is not a duration"),
            DurationError::NoUnit(text) => format!("`{text}` has a number without a unit"),
            DurationError::UnknownUnit(unit) => format!("`{unit}` is not a unit of time"),
            DurationError::TooShort => format!("{subject} must be at least 1ms"),
            DurationError::TooLong(text) => {
                format!("`{text}` is too long: a duration is at most {LONGEST_DAYS} days")
            }
        };
        format!("{what}: {DURATION_EXAMPLES}")
    }
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message("the duration"))
    }
}

impl std::error::Error for DurationError {}

/// Reads a duration: `"500ms"`, `"30s"`, `"10m"`, `"1h30m"`, `"1.5h"`,
/// `"2d"`, `"2 min 5 s"`, at least 1 ms and at most [`LONGEST_DAYS`] days.
///
/// Units: `ms`; `s`, `sec`, `secs`; `m`, `min`, `mins`; `h`, `hr`, `hrs`;
/// `d`, `day`, `days`.
///
/// ```
/// use futurize_units::{DurationError, parse_duration};
/// use std::time::Duration;
/// assert_eq!(parse_duration("2 min 5 s"), Ok(Duration::from_secs(125)));
/// assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
/// assert_eq!(parse_duration("10"), Err(DurationError::NoUnit("10".into())));
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    terms(text).map(|(duration, _)| duration)
}

/// The same duration written short, as [`parse_duration`] reads it: each
/// term's number as written, its unit's short name, no spaces
/// (`"2 min 5 secs"` → `"2m5s"`; `"1h30m"` stays).
///
/// ```
/// assert_eq!(futurize_units::compact_duration(" 1.5 hrs ").as_deref(), Ok("1.5h"));
/// ```
pub fn compact_duration(text: &str) -> Result<String, DurationError> {
    let (_, terms) = terms(text)?;
    Ok(terms
        .iter()
        .map(|term| format!("{}{}", term.number, term.unit))
        .collect())
}

/// One `<number><unit>` term of a duration.
struct Term<'a> {
    /// As written.
    number: &'a str,
    /// The unit's short name.
    unit: &'static str,
}

/// The duration of `text`, and its terms.
fn terms(text: &str) -> Result<(Duration, Vec<Term<'_>>), DurationError> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(DurationError::Empty);
    }
    let too_long = || DurationError::TooLong(text.to_string());
    let mut total: u128 = 0;
    let mut terms = Vec::new();
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let decimal =
            Decimal::parse(number).ok_or_else(|| DurationError::NotADuration(text.to_string()))?;
        let after = after.trim_start();
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let (short, nanos) = unit_of(unit).ok_or_else(|| match unit {
            "" => DurationError::NoUnit(text.to_string()),
            other => DurationError::UnknownUnit(other.to_string()),
        })?;
        let term = decimal.times(nanos).ok_or_else(too_long)?;
        total = total.checked_add(term).ok_or_else(too_long)?;
        terms.push(Term {
            number,
            unit: short,
        });
        rest = after.trim_start();
    }
    if total > LONGEST.as_nanos() {
        return Err(too_long());
    }
    let duration = Duration::new(
        (total / 1_000_000_000) as u64,
        (total % 1_000_000_000) as u32,
    );
    if duration < LEAST {
        return Err(DurationError::TooShort);
    }
    Ok((duration, terms))
}

/// The short name of a unit as written, and its length in nanoseconds.
fn unit_of(unit: &str) -> Option<(&'static str, u64)> {
    UNITS
        .iter()
        .find(|(names, _)| names.contains(&unit))
        .map(|(names, nanos)| (names[0], *nanos))
}

/// A number as written: digits with at most one `.`, at least one digit.
struct Decimal<'a> {
    whole: &'a str,
    fraction: &'a str,
}

impl<'a> Decimal<'a> {
    /// `number`, which holds only digits and dots, if it is a number.
    fn parse(number: &'a str) -> Option<Decimal<'a>> {
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if fraction.contains('.') || (whole.is_empty() && fraction.is_empty()) {
            return None;
        }
        Some(Decimal { whole, fraction })
    }

    /// The number times `unit`, rounded to a whole; `None` when it
    /// overflows.
    fn times(&self, unit: u64) -> Option<u128> {
        let unit = u128::from(unit);
        let whole = digits_value(self.whole)?.checked_mul(unit)?;
        let fraction = &self.fraction[..self.fraction.len().min(FRACTION_DIGITS)];
        let scale = 10u128.pow(fraction.len() as u32);
        // At most 10^24 times a day in nanoseconds: well within a u128.
        let part = (digits_value(fraction)? * unit + scale / 2) / scale;
        whole.checked_add(part)
    }
}

/// The value of a run of ASCII digits (0 when empty); `None` when it
/// overflows.
fn digits_value(digits: &str) -> Option<u128> {
    digits.bytes().try_fold(0u128, |value, digit| {
        value.checked_mul(10)?.checked_add(u128::from(digit - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::{DurationError, LONGEST_DAYS, compact_duration, parse_duration};
    use std::time::Duration;

    #[test]
    fn humane_durations() {
        let ms = |text| parse_duration(text).map(|d| d.as_millis());
        assert_eq!(ms("500ms"), Ok(500));
        assert_eq!(ms("30s"), Ok(30_000));
        assert_eq!(ms("10m"), Ok(600_000));
        assert_eq!(ms("1h30m"), Ok(5_400_000));
        assert_eq!(ms(" 1.5 h "), Ok(5_400_000));
        assert_eq!(ms("2d"), Ok(172_800_000));
        assert_eq!(ms("2 min 5 s"), Ok(125_000));
        assert_eq!(ms("1.5 hrs"), Ok(5_400_000));
        assert_eq!(ms("250ms"), Ok(250));
        assert_eq!(ms(".5s"), Ok(500));
        assert_eq!(ms("5.s"), Ok(5_000));
        for bad in [
            "",
            "10",
            "5",
            "m",
            "5 parsecs",
            "5w",
            "1..2s",
            "1.2.3s",
            ".s",
            "0s",
            "-3s",
            "5s,",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn arithmetic_is_exact() {
        assert_eq!(parse_duration("0.3s"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("1.1ms"), Ok(Duration::from_micros(1100)));
        assert_eq!(
            parse_duration("1.000000001s"),
            Ok(Duration::new(1, 1)),
            "to the nanosecond"
        );
        assert_eq!(
            parse_duration("1ms 0.0000004ms"),
            Ok(Duration::from_millis(1))
        );
        assert_eq!(
            parse_duration("1ms 0.0000005ms"),
            Ok(Duration::new(0, 1_000_001)),
            "rounded to the nearest nanosecond"
        );
    }

    #[test]
    fn the_errors_say_what_is_wrong() {
        let err = |text| parse_duration(text).unwrap_err();
        assert_eq!(err("  "), DurationError::Empty);
        assert_eq!(
            err("ten minutes"),
            DurationError::NotADuration("ten minutes".into())
        );
        assert_eq!(err("2 min 5"), DurationError::NoUnit("2 min 5".into()));
        assert_eq!(err("5 weeks"), DurationError::UnknownUnit("weeks".into()));
        assert_eq!(err("0.5ms"), DurationError::TooShort);
        assert_eq!(err("0ms"), DurationError::TooShort);
        let huge = "99999999999999999999999999999999999999999d";
        assert_eq!(err(huge), DurationError::TooLong(huge.into()));
        assert_eq!(
            err("600000000000000000000s"),
            DurationError::TooLong("600000000000000000000s".into())
        );
        assert_eq!(
            err("10 parsecs").message("`timeout`"),
            "`parsecs` is not a unit of time: write a duration such as \"500ms\", \"30s\", \
             \"10m\", \"1h30m\" or \"2d\""
        );
        assert!(
            err("0s")
                .message("`timeout`")
                .starts_with("`timeout` must be at least 1ms: ")
        );
        assert!(err("").to_string().starts_with("the duration is empty: "));
    }

    #[test]
    fn the_longest_duration_is_read_and_no_longer() {
        let longest = Duration::from_secs(LONGEST_DAYS * 86_400);
        assert_eq!(parse_duration("365d"), Ok(longest));
        assert_eq!(parse_duration("364d 24h"), Ok(longest));
        for long in ["365d 1ms", "366d", "8761h", "18446744073709551615s"] {
            assert_eq!(
                parse_duration(long),
                Err(DurationError::TooLong(long.into())),
                "{long}"
            );
        }
        let said = parse_duration("400d").unwrap_err().to_string();
        assert!(said.contains("at most 365 days"), "{said}");
    }

    #[test]
    fn compact_durations_keep_the_terms() {
        assert_eq!(compact_duration("1h30m").as_deref(), Ok("1h30m"));
        assert_eq!(compact_duration(" 2 min 5 secs ").as_deref(), Ok("2m5s"));
        assert_eq!(compact_duration("1.5 hrs").as_deref(), Ok("1.5h"));
        assert_eq!(compact_duration("250ms").as_deref(), Ok("250ms"));
        assert_eq!(compact_duration("3 days 1 hr").as_deref(), Ok("3d1h"));
        assert_eq!(compact_duration("0m"), Err(DurationError::TooShort));
        assert_eq!(compact_duration(""), Err(DurationError::Empty));
        let empty = compact_duration("").unwrap_err().message("`time`");
        assert!(empty.starts_with("`time` is empty"), "{empty}");
    }
}
