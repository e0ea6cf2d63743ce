//! What both sides of the process boundary agree on: frames and messages
//! ([`wire`]), values as bytes ([`codec`]) and in their cheapest form
//! (`forms`, `plain_type`, `bulk`), shared memory between a leader and a
//! local worker (`shared_memory`), which binary this is and where its
//! entry functions are (`identity`), the environment variables a leader
//! sets for its workers and those a user sets (`environment`, read and
//! checked in one place), how log levels and printed output travel, and how
//! often a worker reports progress.
//!
//! Invariant: this module imports nothing of futurize but [`Error`], the
//! plain data of a random stream ([`Streams`](crate::rng::Streams)), the
//! plain data of how a task runs ([`Settings`](crate::settings::Settings),
//! which the run message carries) and the poison-tolerant lock, so the
//! leader side (plans, backends, the map engine) and the worker side (the
//! serve loop) can both depend on it and never on each other.
//! runtime/tests/walls.rs fails when that stops being true.

pub(crate) mod agent;
pub(crate) mod bulk;
pub mod codec;
pub(crate) mod environment;
pub(crate) mod forms;
pub(crate) mod identity;
pub(crate) mod job;
pub(crate) mod plain_type;
pub(crate) mod shared_connection;
pub(crate) mod shared_memory;
pub mod wire;

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

/// The environment marker that turns a process into a worker.
pub(crate) const WORKER_ENV: &str = "FUTURIZE_WORKER";

/// Where the leader wants a worker's output captured: two file paths,
/// stdout's and stderr's, separated by a newline.
pub(crate) const CAPTURE_ENV: &str = "FUTURIZE_WORKER_CAPTURE";

/// How often a worker reports finished elements and `progress!()` steps
/// while a chunk runs (and once more when it ends).
pub(crate) const REPORT_EVERY: Duration = Duration::from_millis(100);

/// How often a worker says it is alive, idle or busy.
pub(crate) const HEARTBEAT_EVERY: Duration = Duration::from_millis(500);

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

/// Takes the protocol channel off fds 0 and 1: returns private copies of
/// stdin and stdout, then points fd 0 at `/dev/null` and fd 1 at stderr, so
/// that code which reads stdin or prints cannot corrupt frames.
pub(crate) fn take_stdio() -> std::io::Result<(File, File)> {
    let input: OwnedFd = std::io::stdin().as_fd().try_clone_to_owned()?;
    let output: OwnedFd = std::io::stdout().as_fd().try_clone_to_owned()?;
    let null = File::open("/dev/null")?;
    // SAFETY: dup2 on descriptors this process owns; fds 0 and 1 stay open
    // (now /dev/null and stderr) for anything in the process that uses them.
    let (a, b) = unsafe { (libc::dup2(null.as_raw_fd(), 0), libc::dup2(2, 1)) };
    if a < 0 || b < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((File::from(input), File::from(output)))
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
