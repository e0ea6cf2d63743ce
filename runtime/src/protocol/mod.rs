//! What both sides of the process boundary agree on: frames and messages
//! ([`wire`]), values as bytes ([`codec`]), which binary this is and where its
//! entry functions are (`identity`), the environment variables a leader
//! sets for its workers, how log levels and printed output travel, and how
//! often a worker reports progress.
//!
//! Invariant: this module imports nothing of futurize but [`Error`] and the
//! plain data of a random stream ([`Streams`](crate::rng::Streams)), so the
//! leader side (plans, backends, the map engine) and the worker side (the
//! serve loop) can both depend on it and never on each other.

pub mod codec;
pub(crate) mod identity;
pub mod wire;

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The environment marker that turns a process into a worker.
pub(crate) const WORKER_ENV: &str = "FUTURIZE_WORKER";

/// Where the leader wants a worker's output captured: two file paths,
/// stdout's and stderr's, separated by a newline.
pub(crate) const CAPTURE_ENV: &str = "FUTURIZE_WORKER_CAPTURE";

/// How often a worker reports finished elements and `progress!()` steps
/// while a chunk runs (and once more when it ends).
pub(crate) const REPORT_EVERY: Duration = Duration::from_millis(100);

/// What a task printed.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Bytes written to standard output.
    pub stdout: Vec<u8>,
    /// Bytes written to standard error.
    pub stderr: Vec<u8>,
}

impl Output {
    /// True when nothing was printed.
    pub fn is_empty(&self) -> bool {
        self.stdout.is_empty() && self.stderr.is_empty()
    }
}

/// The log level that travels as a number (0 = off, 1 = error … 5 = trace).
pub(crate) fn level_filter(level: u8) -> log::LevelFilter {
    log::LevelFilter::iter()
        .nth(usize::from(level))
        .unwrap_or(log::LevelFilter::Trace)
}

/// The number a log level travels as: `LevelFilter`'s own order.
pub(crate) fn level_number(level: log::LevelFilter) -> u8 {
    level as u8
}

/// Hex text of a build id, for messages.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_travel_as_their_order() {
        for level in log::LevelFilter::iter() {
            assert_eq!(level_filter(level_number(level)), level);
        }
        assert_eq!(level_filter(200), log::LevelFilter::Trace);
    }
}
