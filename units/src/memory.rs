//! Amounts of memory as Slurm's `--mem` takes them: `"500M"`, `"2G"`,
//! `"1.5T"`, `"800K"`, or a plain number of megabytes.
//!
//! A unit is `K`, `M`, `G` or `T` (any case), powers of 1024, optionally
//! followed by `B`, `i` or `iB` (`"2GB"`, `"2Gi"`, `"2GiB"` are all
//! `2 << 30` bytes); `B` alone is bytes.

use std::fmt;

/// What a memory error tells the user to write.
pub const MEMORY_EXAMPLES: &str =
    "write an amount such as \"2G\", \"500M\" or \"1.5T\" (a plain number is megabytes)";

/// Why a text is not an amount of memory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemoryError {
    /// Nothing but spaces.
    Empty,
    /// No number before the unit (`"lots"`); the whole text.
    NotANumber(String),
    /// A unit that is not one of memory (`"2X"`); the unit as written.
    UnknownUnit(String),
    /// Zero or less (`"0G"`); the whole text.
    NotPositive(String),
    /// More than zero but less than a byte (`"0.5B"`); the whole text.
    LessThanAByte(String),
    /// More than [`LARGEST_TIB`] TiB; the whole text.
    TooLarge(String),
}

/// The largest amount of memory, in TiB (1 PiB): more than any node has,
/// far from overflowing a byte count.
///
/// ```
/// use futurize_units::{LARGEST_TIB, parse_memory};
/// assert_eq!(parse_memory(&format!("{LARGEST_TIB}T")), Ok(LARGEST_TIB << 40));
/// assert!(parse_memory(&format!("{}T", LARGEST_TIB + 1)).is_err());
/// ```
pub const LARGEST_TIB: u64 = 1024;

impl fmt::Display for MemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemoryError::Empty => write!(f, "the amount of memory is empty"),
            MemoryError::NotANumber(text) => write!(f, "`{text}` is not an amount of memory"),
            MemoryError::UnknownUnit(unit) => {
                write!(f, "`{unit}` is not a unit of memory (K, M, G or T)")
            }
            MemoryError::NotPositive(text) => write!(f, "`{text}` is not more than zero"),
            MemoryError::LessThanAByte(text) => write!(f, "`{text}` is less than a byte"),
            MemoryError::TooLarge(text) => {
                write!(f, "`{text}` is too large: at most {LARGEST_TIB}T")
            }
        }?;
        write!(f, ": {MEMORY_EXAMPLES}")
    }
}

impl std::error::Error for MemoryError {}

/// Reads an amount of memory, in bytes: `"500M"`, `"2G"`, `"1.5TB"`,
/// `"800KiB"`, `"4096B"`, or a plain number of megabytes (as Slurm reads
/// `--mem`), from 1 byte to [`LARGEST_TIB`] TiB.
///
/// ```
/// use futurize_units::{MemoryError, parse_memory};
/// assert_eq!(parse_memory("1.5G"), Ok(3 << 29));
/// assert_eq!(parse_memory("100"), Ok(100 << 20));
/// assert_eq!(parse_memory("2X"), Err(MemoryError::UnknownUnit("X".into())));
/// ```
pub fn parse_memory(text: &str) -> Result<u64, MemoryError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(MemoryError::Empty);
    }
    let (number, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len()));
    let amount: f64 = number
        .trim()
        .parse()
        .map_err(|_| MemoryError::NotANumber(text.to_string()))?;
    let scale = scale_of(unit).ok_or_else(|| MemoryError::UnknownUnit(unit.to_string()))?;
    let bytes = amount * scale as f64;
    if bytes <= 0.0 {
        return Err(MemoryError::NotPositive(text.to_string()));
    }
    if bytes < 1.0 {
        return Err(MemoryError::LessThanAByte(text.to_string()));
    }
    if bytes > (LARGEST_TIB << 40) as f64 {
        return Err(MemoryError::TooLarge(text.to_string()));
    }
    Ok(bytes as u64)
}

/// The bytes in one `unit` (which starts with an ASCII letter, if not empty).
fn scale_of(unit: &str) -> Option<u64> {
    let unit = unit.to_ascii_uppercase();
    if unit.is_empty() {
        return Some(1 << 20);
    }
    if unit == "B" {
        return Some(1);
    }
    let (prefix, suffix) = unit.split_at(1);
    if !matches!(suffix, "" | "B" | "I" | "IB") {
        return None;
    }
    match prefix {
        "K" => Some(1 << 10),
        "M" => Some(1 << 20),
        "G" => Some(1 << 30),
        "T" => Some(1 << 40),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{MemoryError, parse_memory};

    #[test]
    fn amounts_in_bytes() {
        assert_eq!(parse_memory("2G"), Ok(2 << 30));
        assert_eq!(parse_memory("500M"), Ok(500 << 20));
        assert_eq!(parse_memory("1.5GB"), Ok(3 << 29));
        assert_eq!(parse_memory("100"), Ok(100 << 20));
        assert_eq!(parse_memory("4096B"), Ok(4096));
        assert_eq!(parse_memory("2GiB"), Ok(2 << 30));
        assert_eq!(parse_memory("3Gi"), Ok(3 << 30));
        assert_eq!(parse_memory(" 4 g "), Ok(4 << 30));
        assert_eq!(parse_memory("800KiB"), Ok(800 << 10));
        assert_eq!(parse_memory("1.5TB"), Ok(3 << 39));
        assert_eq!(
            parse_memory("1e30T"),
            Err(MemoryError::UnknownUnit("e30T".into()))
        );
        assert_eq!(parse_memory("1024T"), Ok(1 << 50));
        for huge in ["99999999999999999999999T", "1025T", "1048577G"] {
            assert_eq!(
                parse_memory(huge),
                Err(MemoryError::TooLarge(huge.into())),
                "{huge}"
            );
        }
    }

    #[test]
    fn what_is_not_an_amount() {
        for bad in [
            "",
            "2X",
            "0G",
            "0.5B",
            "0.0000001K",
            "G",
            "2GG",
            "-1G",
            "1e3M",
            "lots",
            "2 GiBs",
            "2BB",
            "2IB",
            "2GII",
        ] {
            assert!(parse_memory(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_memory(" "), Err(MemoryError::Empty));
        assert_eq!(
            parse_memory("lots"),
            Err(MemoryError::NotANumber("lots".into()))
        );
        assert_eq!(
            parse_memory("0G"),
            Err(MemoryError::NotPositive("0G".into()))
        );
        assert_eq!(
            parse_memory("0.5B"),
            Err(MemoryError::LessThanAByte("0.5B".into()))
        );
        assert_eq!(
            parse_memory("2X").unwrap_err().to_string(),
            "`X` is not a unit of memory (K, M, G or T): write an amount such as \"2G\", \
             \"500M\" or \"1.5T\" (a plain number is megabytes)"
        );
    }
}
