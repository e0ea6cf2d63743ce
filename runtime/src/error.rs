//! The one error type of futurize.
//!
//! Every failure a user can meet at run time is a variant of [`Error`]: a body
//! that panicked, a worker that died, a plan that cannot be understood, bytes
//! that are too large for a frame. Each variant carries the facts needed to act
//! on it (label, element index, pid, sizes), and its message reads as a sentence.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The text forms `FUTURIZE_PLAN` accepts, listed by [`Error::Plan`].
///
/// ```
/// assert!(futurize_runtime::plan::VALID_PLAN_FORMS.contains("multiprocess[:N[:fresh]]"));
/// ```
pub const VALID_PLAN_FORMS: &str = "`sequential`, `multithread[:N]`, \
     `multiprocess[:N[:fresh]]`, `cluster[:HOST,HOST,...]` (HOST as `[user@]name[:port]`), \
     `slurm[:N]`, `slurm-pool[:N]`; `A|B` for alternatives, `OUTER/INNER` for nested levels";

/// A body's panic: what it said, where, and how it got there. The one form
/// of a panic everywhere: in [`Error::Panicked`], in an element's failure and
/// in a worker's answer.
///
/// ```
/// use futurize_runtime::Panic;
/// let p = Panic { message: "boom".into(), location: Some("src/lib.rs:3:5".into()), backtrace: None };
/// assert_eq!(p.message, "boom");
/// ```
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Panic {
    /// The panic message (the `panic!` payload as text).
    pub message: String,
    /// `file:line:column` of the panic, when known.
    pub location: Option<String>,
    /// A backtrace, captured when `RUST_BACKTRACE` is set.
    pub backtrace: Option<String>,
}

/// What went wrong while creating, running or collecting a future.
///
/// ```
/// use futurize_runtime::Error;
/// let e = Error::Plan {
///     source_name: "FUTURIZE_PLAN".into(),
///     text: "multithread:0".into(),
///     reason: "the number of workers must be at least 1".into(),
/// };
/// assert!(e.to_string().contains("FUTURIZE_PLAN"));
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The body of a future panicked. The worker that ran it stays usable.
    #[error("{} panicked{}{}: {}", describe(label, *index), at(&panic.location), backtrace_note(&panic.backtrace), panic.message)]
    Panicked {
        /// What the panic said, where, and its backtrace.
        panic: Panic,
        /// The label given with `label = "..."`, if any.
        label: Option<String>,
        /// The element index inside a `foreach!`, if the future was one element of a map.
        index: Option<usize>,
    },
    /// The worker running the future exited or was killed before it answered.
    #[error("the worker {worker} running {} died ({cause})", describe_lost(label, *index, elements))]
    WorkerDied {
        /// Which worker: its process id or thread name.
        worker: String,
        /// How it ended: `killed by signal 9 (SIGKILL)`, `exit status 3`, …
        cause: String,
        /// The label of the future, if any.
        label: Option<String>,
        /// The element index inside a `foreach!`, if any: the first element
        /// of the lost chunk.
        index: Option<usize>,
        /// Inside a `foreach!`: the elements of the chunk the worker was
        /// running, whose values are lost with it.
        elements: Option<std::ops::Range<usize>>,
    },
    /// The future did not finish within its `timeout`.
    #[error("{} did not finish within {after}", describe(label, *index))]
    Timeout {
        /// The time limit that was exceeded, as given by the user.
        after: String,
        /// The label of the future, if any.
        label: Option<String>,
        /// The element index inside a `foreach!`, if any.
        index: Option<usize>,
    },
    /// The future was cancelled before it produced a value.
    #[error("{} was cancelled before it produced a value", describe(label, None))]
    Cancelled {
        /// The label of the future, if any.
        label: Option<String>,
    },
    /// Leader and worker could not understand each other: version or build mismatch,
    /// corrupt or truncated bytes.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A plan (given in code or in an environment variable) cannot be used.
    #[error(
        "invalid plan in {source_name}: `{text}`: {reason}{} Valid forms: {}",
        full_stop(reason),
        VALID_PLAN_FORMS
    )]
    Plan {
        /// Where the plan came from: `FUTURIZE_PLAN`, or `plan()` for code.
        source_name: String,
        /// The text or plan that was refused.
        text: String,
        /// Why it was refused.
        reason: String,
    },
    /// An environment variable futurize reads (`FUTURIZE_SILENCE_LIMIT`,
    /// `FUTURIZE_MAX_FRAME_BYTES`, …) holds a value it cannot use.
    #[error("invalid {variable}=`{value}`: {reason}")]
    Setting {
        /// The variable: `FUTURIZE_SILENCE_LIMIT`.
        variable: String,
        /// Its value, as set.
        value: String,
        /// Why it cannot be used, and what it takes.
        reason: String,
    },
    /// Workers could not be started.
    #[error("could not start {what}: {reason}")]
    Launch {
        /// What was being started (`worker process`, `thread`, …).
        what: String,
        /// The underlying reason.
        reason: String,
    },
    /// A `foreach!` with `combine` had no value to combine: no elements, or
    /// every element failed under `errors = "remove"`.
    #[error(
        "{} has no value to combine: it had no elements, or all of them failed",
        describe(label, None).replace("a future", "a foreach!")
    )]
    NothingToCombine {
        /// The label of the call, if any.
        label: Option<String>,
    },
    /// What a future or a call asks for (`resources = (...)`) cannot be
    /// understood, or no backend of the plan can give it.
    #[error("the resources {asked} cannot be had: {why}")]
    Resources {
        /// The request, as written.
        asked: String,
        /// Why: the malformed field, or what each backend offers.
        why: String,
    },
    /// Captures or a value are larger than the frame size limit.
    #[error(
        "{what} is {size} bytes, more than the frame limit of {limit} bytes; \
         send less, or raise the limit with FUTURIZE_MAX_FRAME_BYTES"
    )]
    TooLarge {
        /// What was too large: `the captures of future \"x\"`, `the value of …`.
        what: String,
        /// Its size in bytes.
        size: u64,
        /// The limit in force.
        limit: u64,
    },
}

/// Prints the sentence, so `fn main() -> Result<(), futurize::Error>` shows
/// a readable message when it fails.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A `.` after `sentence`, unless it ends in its own stop (`did you mean …?`).
fn full_stop(sentence: &str) -> &'static str {
    if sentence.ends_with(['.', '?', '!']) {
        ""
    } else {
        "."
    }
}

fn describe(label: &Option<String>, index: Option<usize>) -> String {
    match (label, index) {
        (Some(l), Some(i)) => format!("element {i} of \"{l}\""),
        (None, Some(i)) => format!("element {i}"),
        (Some(l), None) => format!("future \"{l}\""),
        (None, None) => "a future".to_string(),
    }
}

fn describe_lost(
    label: &Option<String>,
    index: Option<usize>,
    elements: &Option<std::ops::Range<usize>>,
) -> String {
    match elements {
        Some(r) if r.len() > 1 => {
            let of = label
                .as_ref()
                .map(|l| format!(" of \"{l}\""))
                .unwrap_or_default();
            format!("elements {}..={}{of}", r.start, r.end - 1)
        }
        _ => describe(label, index),
    }
}

fn at(location: &Option<String>) -> String {
    location
        .as_ref()
        .map(|l| format!(" at {l}"))
        .unwrap_or_default()
}

fn backtrace_note(backtrace: &Option<String>) -> impl fmt::Display + '_ {
    struct Note<'a>(&'a Option<String>);
    impl fmt::Display for Note<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.0 {
                Some(bt) => write!(f, " (backtrace follows)\n{bt}\n--"),
                None => Ok(()),
            }
        }
    }
    Note(backtrace)
}

impl From<Panic> for Error {
    /// A body's panic, not yet tied to a label or an element.
    fn from(panic: Panic) -> Error {
        Error::Panicked {
            panic,
            label: None,
            index: None,
        }
    }
}

impl Error {
    /// The label of the future this error belongs to, if it had one.
    pub fn label(&self) -> Option<&str> {
        match self {
            Error::Panicked { label, .. }
            | Error::WorkerDied { label, .. }
            | Error::Timeout { label, .. }
            | Error::Cancelled { label }
            | Error::NothingToCombine { label } => label.as_deref(),
            _ => None,
        }
    }

    /// The same error, now about element `i` of a map labelled `label`.
    pub(crate) fn with_element(mut self, new_label: Option<&str>, i: usize) -> Self {
        match &mut self {
            Error::Panicked { index, .. }
            | Error::WorkerDied { index, .. }
            | Error::Timeout { index, .. } => *index = Some(i),
            _ => {}
        }
        self.with_label(new_label)
    }

    pub(crate) fn with_label(mut self, new: Option<&str>) -> Self {
        if let Some(new) = new {
            match &mut self {
                Error::Panicked { label, .. }
                | Error::WorkerDied { label, .. }
                | Error::Timeout { label, .. }
                | Error::Cancelled { label }
                    if label.is_none() =>
                {
                    *label = Some(new.to_string());
                }
                _ => {}
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panicked_message_names_label_location_and_message() {
        let e = Error::Panicked {
            panic: Panic {
                message: "boom".into(),
                location: Some("src/main.rs:3:5".into()),
                backtrace: None,
            },
            label: Some("sum".into()),
            index: None,
        };
        assert_eq!(
            e.to_string(),
            "future \"sum\" panicked at src/main.rs:3:5: boom"
        );
    }

    #[test]
    fn with_label_fills_only_missing_labels() {
        let e = Error::Cancelled { label: None }.with_label(Some("a"));
        assert_eq!(e.label(), Some("a"));
        let e = e.with_label(Some("b"));
        assert_eq!(e.label(), Some("a"));
    }
}
