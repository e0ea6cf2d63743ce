//! A Slurm job's side: read the task from the registry, run it as a worker
//! would, and leave the answer there (see `protocol::job`).

use crate::body::NestedPlan;
use crate::protocol::job::{
    CALL_INPUT, CALL_TASK, CallKey, JOB_ENV, JOB_TASK_ENV, JOB_TIME_LIMIT_ENV, check_private_dir,
    create_private, input_of, open_own, read_header, result_of, write_header,
};
use crate::{Error, Plan};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// The call directory and task this process was started for as a job;
/// removes the markers from the environment.
///
/// # Safety
/// Must run while the process has a single thread (before `main`).
pub(crate) unsafe fn take_job_environment() -> Option<(PathBuf, String)> {
    let dir = std::env::var_os(JOB_ENV)?;
    let task = std::env::var(JOB_TASK_ENV).unwrap_or_else(|_| "future".into());
    // The job's time limit starts about now: its end, for `time_left()` here
    // and in the processes a nested plan starts.
    let deadline = std::env::var(JOB_TIME_LIMIT_ENV)
        .ok()
        .and_then(|l| l.trim().parse::<u64>().ok())
        .and_then(|limit| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?;
            Some(now.as_secs().saturating_add(limit))
        });
    // SAFETY: by the caller's promise no other thread reads the environment.
    unsafe {
        std::env::remove_var(JOB_ENV);
        std::env::remove_var(JOB_TASK_ENV);
        std::env::remove_var(JOB_TIME_LIMIT_ENV);
        if let Some(d) = deadline {
            std::env::set_var(crate::body::DEADLINE_ENV, d.to_string());
        }
    }
    Some((PathBuf::from(dir), task))
}

/// The job's time signal (`--signal=B:USR1@margin`): its chunk starts no
/// new element, and answers with those that ran.
extern "C" fn on_time_signal(_: libc::c_int) {
    crate::body::set_time_is_up();
}

/// Runs the job's task and publishes its answer.
///
/// Nothing is read from a directory or a file that is not this user's, nor
/// from a file whose header is not of this call and task; the answer
/// carries the call's key and the task, for the leader to check.
pub(crate) fn run_job(
    dir: &std::path::Path,
    task: &str,
    nested: fn(Plan) -> NestedPlan,
) -> Result<(), Error> {
    // SAFETY: installs a handler that does one atomic store, which is
    // async-signal-safe; nothing else in this process handles SIGUSR1.
    unsafe {
        libc::signal(
            libc::SIGUSR1,
            on_time_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        )
    };
    check_private_dir(dir).map_err(|why| {
        Error::Protocol(format!(
            "the job's directory {} is refused: {why}",
            dir.display()
        ))
    })?;
    let (key, own) = open_input(&input_of(dir, task), task, None)?;
    let shared = dir.join(CALL_INPUT);
    let input: Box<dyn Read> = if shared.exists() {
        let (_, call) = open_input(&shared, CALL_TASK, Some(&key))?;
        Box::new(call.chain(own))
    } else {
        Box::new(own)
    };
    let done = result_of(dir, task);
    let partial = dir.join(format!(".{task}.out.{}", std::process::id()));
    let mut output = create_private(&partial, 0o600)
        .map_err(|e| Error::Protocol(format!("{}: {e}", partial.display())))?;
    write_header(&mut output, &key, task).map_err(io)?;
    // No heartbeats: nobody listens to a file while the job runs; and no
    // timer: the job's time limit is Slurm's to keep.
    let mode = super::ServeMode {
        heartbeat: false,
        timed: false,
    };
    let served = super::serve_on(
        input,
        Box::new(output.try_clone().map_err(io)?),
        nested,
        || None,
        mode,
    );
    output.sync_all().map_err(io)?;
    // Published even when serving failed: what it holds says how far it got.
    std::fs::rename(&partial, &done).map_err(io)?;
    served
}

/// Opens the input file `path` of `task` (of the call keyed `key` when
/// given): the call's key and the rest of the file, after its header.
fn open_input(
    path: &Path,
    task: &str,
    key: Option<&CallKey>,
) -> Result<(CallKey, BufReader<File>), Error> {
    let refused = |why: String| {
        Error::Protocol(format!(
            "the job's input {} is refused: {why}",
            path.display()
        ))
    };
    let file = open_own(path).map_err(|e| refused(e.to_string()))?;
    let mut input = BufReader::new(file);
    let (their_key, their_task) = read_header(&mut input).map_err(refused)?;
    if their_task != task {
        return Err(refused(format!("it is the input of task `{their_task}`")));
    }
    if key.is_some_and(|k| *k != their_key) {
        return Err(refused(
            "it belongs to another call than the task's input".into(),
        ));
    }
    Ok((their_key, input))
}

fn io(e: std::io::Error) -> Error {
    Error::Protocol(format!("writing the job's answer: {e}"))
}
