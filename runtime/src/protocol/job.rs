//! How a Slurm job finds its work and leaves its answer: files in the
//! call's directory of the registry, in the wire format of worker
//! processes.
//!
//! A job is a worker whose channel is a pair of files. Its input is the
//! call's shared part, [`CALL_INPUT`] (the handshake, and for a `foreach!`
//! the captures as a `KeepCaptures`), followed by its own part, `<task>.in`
//! (a `Run`: a future, or a chunk of the call). It writes its answers (`Ready`, logs, `Done`)
//! to a temporary file and renames it to `<task>.out` when it is complete,
//! so that the leader, polling, never reads half an answer.

use std::path::{Path, PathBuf};

/// The directory of the call whose task this process runs, as a job.
pub(crate) const JOB_ENV: &str = "FUTURIZE_JOB";

/// Which task of the call: `future`, `chunk-3`.
pub(crate) const JOB_TASK_ENV: &str = "FUTURIZE_JOB_TASK";

/// The part of the input every task of a call shares.
pub(crate) const CALL_INPUT: &str = "call.in";

/// The task's own input.
pub(crate) fn input_of(dir: &Path, task: &str) -> PathBuf {
    dir.join(format!("{task}.in"))
}

/// The task's answers, once complete.
pub(crate) fn result_of(dir: &Path, task: &str) -> PathBuf {
    dir.join(format!("{task}.out"))
}
