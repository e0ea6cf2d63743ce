//! The numbers and durations futurize reads from environment variables,
//! checked in one place.
//!
//! The invariant: a value that is garbage, zero, negative or past its bound
//! is an [`Error::Setting`] naming the variable and the value, returned on
//! the leader's thread where a plan's backend starts ([`check`]), never a
//! panic on a background thread nor a silent default. An empty value means
//! unset, as `VAR=` is the usual way to unset a variable. Each value is read
//! once per process.

use crate::Error;
use std::sync::OnceLock;
use std::time::Duration;

/// A number of bytes read from a variable, with its bounds.
pub(crate) struct ByteSetting {
    variable: &'static str,
    default: u64,
    most: u64,
    value: OnceLock<Result<u64, Error>>,
}

/// A duration read from a variable, with its bounds (the longest is
/// [`futurize_units::LONGEST_DAYS`]).
pub(crate) struct DurationSetting {
    variable: &'static str,
    default: Duration,
    least: Duration,
    /// Why a shorter value cannot work, for the error.
    least_why: &'static str,
    value: OnceLock<Result<Duration, Error>>,
}

/// `FUTURIZE_MAX_FRAME_BYTES`: the size limit of one frame, 1 byte to 1 TiB.
pub(crate) static MAX_FRAME_BYTES: ByteSetting = ByteSetting {
    variable: "FUTURIZE_MAX_FRAME_BYTES",
    default: crate::protocol::codec::DEFAULT_MAX_FRAME_BYTES,
    most: 1 << 40,
    value: OnceLock::new(),
};

/// `FUTURIZE_SILENCE_LIMIT`: how long a worker process may be silent, at
/// least three heartbeats.
pub(crate) static SILENCE_LIMIT: DurationSetting = DurationSetting {
    variable: "FUTURIZE_SILENCE_LIMIT",
    default: Duration::from_secs(30),
    least: Duration::from_millis(3 * crate::protocol::HEARTBEAT_EVERY.as_millis() as u64),
    least_why: "three heartbeats of a worker",
    value: OnceLock::new(),
};

/// A pool's idle time when neither the plan nor `FUTURIZE_POOL_IDLE` says
/// (`plan::DEFAULT_POOL_IDLE`).
pub(crate) const POOL_IDLE_DEFAULT: Duration = Duration::from_secs(60);

/// `FUTURIZE_POOL_IDLE`: how long a Slurm worker pool's allocation may have
/// no work before it is given back, where the plan does not say; `0`: at
/// once.
pub(crate) static POOL_IDLE: DurationSetting = DurationSetting {
    variable: "FUTURIZE_POOL_IDLE",
    default: POOL_IDLE_DEFAULT,
    least: Duration::ZERO,
    least_why: "zero gives an allocation back as soon as it is idle",
    value: OnceLock::new(),
};

/// `FUTURIZE_SLURM_SILENCE_LIMIT`: how long Slurm may fail to answer
/// before the jobs waited for are given up.
pub(crate) static SLURM_SILENCE_LIMIT: DurationSetting = DurationSetting {
    variable: "FUTURIZE_SLURM_SILENCE_LIMIT",
    default: Duration::from_secs(300),
    least: Duration::from_secs(1),
    least_why: "Slurm is asked about its jobs every second",
    value: OnceLock::new(),
};

/// Checks every variable, so that a malformed one is an error where a
/// plan's backend starts, before any background thread reads it.
pub(crate) fn check() -> Result<(), Error> {
    MAX_FRAME_BYTES.read()?;
    SILENCE_LIMIT.read()?;
    SLURM_SILENCE_LIMIT.read()?;
    POOL_IDLE.read()?;
    Ok(())
}

/// The variable's text: `None` when unset or empty.
fn text_of(variable: &str) -> Result<Option<String>, Error> {
    match std::env::var(variable) {
        Ok(text) if text.trim().is_empty() => Ok(None),
        Ok(text) => Ok(Some(text)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(raw)) => Err(Error::Setting {
            variable: variable.to_string(),
            value: raw.to_string_lossy().into_owned(),
            reason: "the value is not valid UTF-8".into(),
        }),
    }
}

impl ByteSetting {
    /// The value in force, or why the variable's cannot be used.
    pub(crate) fn read(&self) -> Result<u64, Error> {
        self.value
            .get_or_init(|| {
                let Some(text) = text_of(self.variable)? else {
                    return Ok(self.default);
                };
                self.parse(text.trim()).map_err(|reason| Error::Setting {
                    variable: self.variable.to_string(),
                    value: text,
                    reason,
                })
            })
            .clone()
    }

    /// The value in force. A malformed variable was already refused by
    /// [`check`] where the plan's backend started; a reader that runs
    /// without one (a worker) gets the default.
    pub(crate) fn value(&self) -> u64 {
        self.read().unwrap_or(self.default)
    }

    fn parse(&self, text: &str) -> Result<u64, String> {
        let range = format!("a whole number of bytes from 1 to {}", self.most);
        match text.parse::<u64>() {
            Ok(n) if (1..=self.most).contains(&n) => Ok(n),
            Ok(0) => Err(format!("a limit of 0 bytes lets nothing through: {range}")),
            Ok(_) => Err(format!("too large: {range} (1 TiB)")),
            Err(_) if text.bytes().all(|b| b.is_ascii_digit()) => {
                Err(format!("too large: {range} (1 TiB)"))
            }
            Err(_) => Err(format!("not {range}")),
        }
    }
}

impl DurationSetting {
    /// The value in force, or why the variable's cannot be used.
    pub(crate) fn read(&self) -> Result<Duration, Error> {
        self.value
            .get_or_init(|| {
                let Some(text) = text_of(self.variable)? else {
                    return Ok(self.default);
                };
                self.parse(&text).map_err(|reason| Error::Setting {
                    variable: self.variable.to_string(),
                    value: text,
                    reason,
                })
            })
            .clone()
    }

    /// The value in force. A malformed variable was already refused by
    /// [`check`] where the plan's backend started.
    pub(crate) fn value(&self) -> Duration {
        self.read().unwrap_or(self.default)
    }

    fn parse(&self, text: &str) -> Result<Duration, String> {
        use futurize_units::DurationError;
        let too_short = || {
            format!(
                "it must be at least {:?} ({}); the default is {:?}",
                self.least, self.least_why, self.default
            )
        };
        if self.least.is_zero() && text.trim() == "0" {
            return Ok(Duration::ZERO);
        }
        match futurize_units::parse_duration(text) {
            Ok(d) if d >= self.least => Ok(d),
            // Zero is a duration here, though no unit parser's.
            Err(DurationError::TooShort) if self.least.is_zero() => Ok(Duration::ZERO),
            Ok(_) | Err(DurationError::TooShort) => Err(too_short()),
            Err(e) => Err(e.message("the value")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silence() -> DurationSetting {
        DurationSetting {
            variable: "X",
            default: Duration::from_secs(30),
            least: Duration::from_millis(1500),
            least_why: "three heartbeats",
            value: OnceLock::new(),
        }
    }

    #[test]
    fn a_setting_that_allows_zero_reads_it() {
        for zero in ["0", " 0s ", "0ms"] {
            assert_eq!(POOL_IDLE.parse(zero), Ok(Duration::ZERO), "{zero}");
        }
        assert_eq!(POOL_IDLE.parse("30s"), Ok(Duration::from_secs(30)));
        assert!(POOL_IDLE.parse("soon").is_err());
        assert!(POOL_IDLE.parse("-1s").is_err());
    }

    #[test]
    fn durations_out_of_bounds_say_why() {
        let s = silence();
        assert_eq!(s.parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(s.parse(" 1.5s "), Ok(Duration::from_millis(1500)));
        for (bad, why) in [
            ("99999999999999999999999d", "at most 365 days"),
            ("366d", "at most 365 days"),
            ("garbage", "is not a duration"),
            ("-5s", "is not a duration"),
            ("0s", "at least 1.5s"),
            ("500ms", "at least 1.5s"),
            ("2", "a number without a unit"),
        ] {
            let said = s.parse(bad).unwrap_err();
            assert!(said.contains(why), "{bad}: {said}");
        }
    }

    #[test]
    fn byte_counts_out_of_bounds_say_why() {
        let s = ByteSetting {
            variable: "X",
            default: 1 << 30,
            most: 1 << 40,
            value: OnceLock::new(),
        };
        assert_eq!(s.parse("1000"), Ok(1000));
        assert_eq!(s.parse("1099511627776"), Ok(1 << 40));
        for (bad, why) in [
            ("0", "lets nothing through"),
            ("-5", "not a whole number"),
            ("garbage", "not a whole number"),
            ("1.5", "not a whole number"),
            ("1099511627777", "too large"),
            ("18446744073709551615", "too large"),
            ("99999999999999999999999", "too large"),
        ] {
            let said = s.parse(bad).unwrap_err();
            assert!(said.contains(why), "{bad}: {said}");
        }
    }
}
