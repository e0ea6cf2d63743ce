//! The registry: one directory per future or `foreach!` call on the shared
//! file system, holding what its jobs read (`call.in`, `<task>.in`), what
//! they answer (`<task>.out`), their scripts and their logs.
//!
//! Invariant: a directory is removed when its last job's answer has been
//! taken, unless a job failed: then it is kept, and the error names it.

use crate::Error;
use crate::protocol::codec;
use crate::protocol::job::{CALL_INPUT, JOB_ENV, JOB_TASK_ENV, input_of, result_of};
use crate::protocol::wire::{self, FromWorker, ToWorker};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The placeholder a job template holds where the job's command goes.
pub(super) const COMMAND_PLACEHOLDER: &str = "{{command}}";

/// One future's or call's directory.
pub(super) struct CallDir {
    pub(super) path: PathBuf,
    keep: AtomicBool,
}

impl CallDir {
    /// A new directory under `root`, named after this leader and `what`.
    pub(super) fn create(root: &Path, what: &str) -> Result<CallDir, Error> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let path = root.join(format!("{}-{}-{what}-{n}", host.trim(), std::process::id()));
        std::fs::create_dir_all(&path).map_err(|e| registry_error(&path, e))?;
        Ok(CallDir {
            path,
            keep: AtomicBool::new(false),
        })
    }

    /// Keeps the directory (a job failed: its files explain).
    pub(super) fn keep(&self) {
        self.keep.store(true, Ordering::Relaxed);
    }
}

impl Drop for CallDir {
    fn drop(&mut self) {
        if !self.keep.load(Ordering::Relaxed) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub(super) fn registry_error(path: &Path, e: std::io::Error) -> Error {
    Error::Launch {
        what: "a Slurm job".into(),
        reason: format!("the registry {}: {e}", path.display()),
    }
}

/// Writes `messages` (with their payloads) as frames into `path`.
pub(super) fn write_frames(path: &Path, messages: &[(ToWorker, &[u8])]) -> Result<(), Error> {
    let file = File::create(path).map_err(|e| registry_error(path, e))?;
    let mut out = BufWriter::new(file);
    for (message, payload) in messages {
        wire::write_message(&mut out, message, payload, codec::max_frame_bytes())?;
    }
    out.flush().map_err(|e| registry_error(path, e))
}

/// The handshake every job's input starts with.
/// The shared part of a call's input.
pub(super) fn call_input(dir: &Path) -> PathBuf {
    dir.join(CALL_INPUT)
}

/// A task's own input.
pub(super) fn task_input(dir: &Path, task: &str) -> PathBuf {
    input_of(dir, task)
}

/// A task's answers.
pub(super) fn task_result(dir: &Path, task: &str) -> PathBuf {
    result_of(dir, task)
}

/// The job script: the template (or a bare shell script) with the command
/// that runs `task` of `dir` with this executable. `task` may name the
/// array index as `$SLURM_ARRAY_TASK_ID`.
pub(super) fn job_script(template: Option<&str>, dir: &Path, task: &str) -> Result<String, Error> {
    let exe = std::env::current_exe().map_err(|e| Error::Launch {
        what: "a Slurm job".into(),
        reason: format!("the leader's executable: {e}"),
    })?;
    let quote = |p: &Path| format!("'{}'", p.to_string_lossy().replace('\'', r"'\''"));
    let command = format!(
        "{JOB_ENV}={dir} {JOB_TASK_ENV}=\"{task}\" exec {exe}",
        dir = quote(dir),
        exe = quote(&exe),
    );
    Ok(match template {
        None => format!("#!/bin/sh\n{command}\n"),
        Some(t) => t.replace(COMMAND_PLACEHOLDER, &command),
    })
}

/// Writes `script` into `dir` as `name`, executable.
pub(super) fn write_script(dir: &Path, name: &str, script: &str) -> Result<PathBuf, Error> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, script).map_err(|e| registry_error(&path, e))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| registry_error(&path, e))?;
    Ok(path)
}

/// The frames of a job's answer file.
pub(super) fn read_answers(path: &Path) -> Result<Vec<(FromWorker, Vec<u8>)>, Error> {
    let file = File::open(path).map_err(|e| Error::Protocol(format!("{}: {e}", path.display())))?;
    let mut input = BufReader::new(file);
    let mut frames = Vec::new();
    while let Some(frame) =
        wire::read_message::<_, FromWorker>(&mut input, codec::max_frame_bytes())?
    {
        frames.push(frame);
    }
    Ok(frames)
}

/// The last lines of a job's log, for an error.
pub(super) fn log_tail(path: &Path) -> String {
    const LINES: usize = 10;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            if lines.is_empty() {
                format!("its log {} is empty", path.display())
            } else {
                format!(
                    "its log {} ends: {}",
                    path.display(),
                    lines[lines.len().saturating_sub(LINES)..].join(" | ")
                )
            }
        }
        Err(_) => format!("it left no log at {}", path.display()),
    }
}
