//! A Slurm job's side: read the task from the registry, run it as a worker
//! would, and leave the answer there (see `protocol::job`).

use crate::body::NestedPlan;
use crate::protocol::job::{CALL_INPUT, JOB_ENV, JOB_TASK_ENV, input_of, result_of};
use crate::{Error, Plan};
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

/// The call directory and task this process was started for as a job;
/// removes the markers from the environment.
///
/// # Safety
/// Must run while the process has a single thread (before `main`).
pub(crate) unsafe fn take_job_environment() -> Option<(PathBuf, String)> {
    let dir = std::env::var_os(JOB_ENV)?;
    let task = std::env::var(JOB_TASK_ENV).unwrap_or_else(|_| "future".into());
    // SAFETY: by the caller's promise no other thread reads the environment.
    unsafe {
        std::env::remove_var(JOB_ENV);
        std::env::remove_var(JOB_TASK_ENV);
    }
    Some((PathBuf::from(dir), task))
}

/// Runs the job's task and publishes its answer.
pub(crate) fn run_job(
    dir: &std::path::Path,
    task: &str,
    nested: fn(Plan) -> NestedPlan,
) -> Result<(), Error> {
    let open =
        |p: PathBuf| File::open(&p).map_err(|e| Error::Protocol(format!("{}: {e}", p.display())));
    let shared = dir.join(CALL_INPUT);
    let own = open(input_of(dir, task))?;
    let input: Box<dyn Read> = if shared.exists() {
        Box::new(open(shared)?.chain(own))
    } else {
        Box::new(own)
    };
    let done = result_of(dir, task);
    let partial = dir.join(format!(".{task}.out.{}", std::process::id()));
    let output = File::create(&partial)
        .map_err(|e| Error::Protocol(format!("{}: {e}", partial.display())))?;
    // No heartbeats: nobody listens to a file while the job runs; and no
    // timer: the job's time limit is Slurm's to keep.
    let mode = super::ServeMode {
        heartbeat: false,
        timed: false,
    };
    let served = super::serve_on(
        input,
        output.try_clone().map_err(io)?,
        nested,
        || None,
        mode,
    );
    output.sync_all().map_err(io)?;
    // Published even when serving failed: what it holds says how far it got.
    std::fs::rename(&partial, &done).map_err(io)?;
    served
}

fn io(e: std::io::Error) -> Error {
    Error::Protocol(format!("writing the job's answer: {e}"))
}
