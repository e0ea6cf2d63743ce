//! How one piece of work runs: [`Settings`], the one shape of a future's or
//! a `foreach!` call's options from the macro to the worker.
//!
//! The macros build a `Settings` from the options written after a body; the
//! leader fills in the random streams once it knows how many elements a
//! call has, and from then on the value is carried unchanged: in a
//! [`Work`](crate::backend::Work) to a backend, in the run message to a
//! worker process or a Slurm job, and there into the running task. A new
//! per-task option lives in the macro's option parser, in this struct, and
//! where it takes effect; nowhere else.
//!
//! Invariant: this is plain data, the same on both sides of the process
//! boundary; it imports nothing of the leader or the worker side.

use crate::Error;
use crate::plan::Resources;
use crate::protocol::level_number;
use crate::rng::Streams;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What `errors = "..."` asks for when elements fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ErrorPolicy {
    /// Return the first failure (lowest index) and stop the rest.
    #[default]
    Stop,
    /// Leave failed elements out of the result.
    Remove,
    /// Give one `Result` per element.
    Pass,
}

/// How one future or one `foreach!` call runs, besides what it runs.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// `label = ".."`: names the work in errors, traces and the bar.
    pub label: Option<String>,
    /// The random streams, with `seed`: a future's own, or a call's from
    /// element 0 (a chunk skips to its first element). Filled by the leader,
    /// not by the macros.
    pub streams: Option<Streams>,
    /// `stdout = false` silences what bodies print (default: capture it and
    /// relay it in order).
    pub stdout: bool,
    /// `timeout = "10m"`: the time limit of the future, or of each element.
    pub timeout: Option<TimeLimit>,
    /// `progress = true`: a bar, and workers report finished elements.
    pub progress: bool,
    /// `retries = n`: run a chunk lost with its worker again, up to `n` times.
    pub retries: u32,
    /// `escalate = (mem = 2.0, time = 1.5)`: a retry of work that ran out
    /// of memory or time asks for that much more (`escalate = false`:
    /// `None`, retries ask for the same). Slurm jobs only.
    pub escalate: Option<Escalation>,
    /// `errors = ".."`; under `Stop` a chunk ends at its first failure.
    pub errors: ErrorPolicy,
    /// `resources = (mem = "2G", ...)`: what the work needs (`None`: nothing
    /// in particular). Boxed: most work asks for nothing, and a small
    /// `Settings` moves cheaply on the way to a backend.
    pub resources: Option<Box<Resources>>,
    /// The leader's `log::max_level()` when the work was made, as a number
    /// (0 = off … 5 = trace): records below it are not sent back.
    pub log_level: u8,
}

impl Default for Settings {
    /// The defaults of every option, with the log level in force now.
    #[inline]
    fn default() -> Self {
        Settings {
            label: None,
            streams: None,
            stdout: true,
            timeout: None,
            progress: false,
            retries: 0,
            escalate: Some(Escalation::default()),
            errors: ErrorPolicy::Stop,
            resources: None,
            log_level: level_number(log::max_level()),
        }
    }
}

impl Settings {
    /// What the work asks for, `None` when nothing in particular.
    pub(crate) fn resources(&self) -> Option<&Resources> {
        self.resources.as_deref().filter(|r| !r.is_empty())
    }

    /// Under `errors = "stop"` a chunk ends at its first failure.
    pub(crate) fn stops_at_failure(&self) -> bool {
        self.errors == ErrorPolicy::Stop
    }
}

/// By how much a retry's resources grow when its job ran out of memory or of
/// time: the factors of `escalate = (mem = .., time = ..)`.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    /// The memory of a retry after the job ran out of it, times this.
    pub mem: f64,
    /// The time limit of a retry after the job ran out of it, times this.
    pub time: f64,
}

impl Default for Escalation {
    /// Double, as Nextflow users write `memory { 2.GB * task.attempt }`.
    fn default() -> Self {
        Escalation {
            mem: 2.0,
            time: 2.0,
        }
    }
}

/// A `timeout = "..."` option: the limit, and the text the user wrote (for
/// the error).
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TimeLimit {
    /// The limit.
    pub limit: Duration,
    /// As written: `"10m"`.
    pub text: String,
}

impl TimeLimit {
    /// A limit given as a `Duration` expression.
    pub fn from_duration(limit: Duration) -> TimeLimit {
        TimeLimit {
            limit,
            text: format!("{limit:?}"),
        }
    }

    /// The limit in whole milliseconds (at least 1), as it travels to workers.
    pub(crate) fn millis(&self) -> u64 {
        u64::try_from(self.limit.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// The error of a body that ran past this limit.
    pub(crate) fn error(&self) -> Error {
        Error::Timeout {
            after: self.text.clone(),
            label: None,
            index: None,
        }
    }
}
