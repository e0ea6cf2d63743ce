//! The registry: one directory per future or `foreach!` call on the shared
//! file system, holding what its jobs read (`call.in`, `<task>.in`), what
//! they answer (`<task>.out`), their scripts and their logs.
//!
//! Invariant: a directory is removed when its last job's answer has been
//! taken, unless a job failed: then it is kept, and the error names it.
//!
//! Trust (see `protocol::job`): the root is this user's and closed to
//! others' writes; a call's directory is created fresh, 0700, under a name
//! no one can guess; its files are created new, never through a link; each
//! starts with the call's key and its task, and an answer is read only when
//! both are this call's.

use crate::Error;
use crate::protocol::codec;
use crate::protocol::job::{
    CALL_INPUT, CallKey, JOB_ENV, JOB_TASK_ENV, JOB_TIME_LIMIT_ENV, create_private, expect_header,
    input_of, open_own, prepare_own_root, result_of, write_header,
};
use crate::protocol::wire::{self, FromWorker, ToWorker};
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The file of a cached call's directory (`cached-<durable key>/`) that
/// lists its jobs, a line each: the call directory, its key, the task, the
/// job id and the task's elements (`call-dir key task job start end`).
pub(super) const JOBS_RECORD: &str = "jobs";

/// One line of [`JOBS_RECORD`].
pub(super) struct Recorded {
    pub(super) dir: String,
    pub(super) key: CallKey,
    pub(super) task: String,
    pub(super) job: String,
    pub(super) elements: std::ops::Range<usize>,
}

/// Appends `lines` to the jobs record of `durable` (one write: lines of a
/// write never interleave with another leader's).
pub(super) fn record_jobs(durable: &Path, lines: &[Recorded]) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = durable.join(JOBS_RECORD);
    let text: String = lines
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {} {}\n",
                r.dir, r.key, r.task, r.job, r.elements.start, r.elements.end
            )
        })
        .collect();
    let mut file = std::fs::File::options()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| registry_error(&path, e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| registry_error(&path, e))
}

/// The jobs record of `durable`: the lines that read whole (a line cut by
/// a killed leader is skipped).
pub(super) fn recorded_jobs(durable: &Path) -> Vec<Recorded> {
    let Ok(file) = open_own(&durable.join(JOBS_RECORD)) else {
        return Vec::new();
    };
    let mut text = String::new();
    let _ = std::io::Read::read_to_string(&mut &file, &mut text);
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            let [dir, key, task, job, start, end] = f[..] else {
                return None;
            };
            let safe = |s: &str| !s.is_empty() && !s.contains('/') && !s.starts_with('.');
            Some(Recorded {
                dir: dir.to_string(),
                key: CallKey::parse(key)?,
                task: task.to_string(),
                job: job.to_string(),
                elements: start.parse().ok()?..end.parse().ok()?,
            })
            .filter(|r| safe(&r.dir) && safe(&r.task))
        })
        .collect()
}

/// The placeholder a job template holds where the job's command goes.
pub(super) const COMMAND_PLACEHOLDER: &str = "{{command}}";

/// Where a plan's jobs start and keep their files.
pub(crate) struct Placed {
    /// The working directory the jobs start in.
    pub(crate) cwd: PathBuf,
    /// The registry, ready (this user's alone).
    pub(crate) root: PathBuf,
    /// The job template, read and checked.
    pub(crate) template: Option<String>,
}

/// The working directory, the registry (the plan's, `FUTURIZE_REGISTRY`, or
/// `.futurize/`; made ready) and the job template (the plan's or
/// `FUTURIZE_SLURM_TEMPLATE`; read and checked) of `spec`'s jobs; `refuse`
/// makes the error of what cannot be had.
pub(crate) fn placed(
    spec: &crate::plan::Slurm,
    refuse: impl Fn(String) -> Error,
) -> Result<Placed, Error> {
    let cwd = std::env::current_dir().map_err(|e| refuse(format!("working directory: {e}")))?;
    let root = spec
        .registry
        .clone()
        .or_else(|| std::env::var_os(super::REGISTRY_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(".futurize"));
    let root = if root.is_absolute() {
        root
    } else {
        cwd.join(root)
    };
    prepare_root(&root)?;
    let template_path = spec
        .template
        .clone()
        .or_else(|| std::env::var_os(super::TEMPLATE_ENV).map(PathBuf::from));
    let template = match template_path {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| refuse(format!("the job template {}: {e}", path.display())))?;
            check_template(&text)
                .map_err(|why| refuse(format!("the job template {}: {why}", path.display())))?;
            Some(text)
        }
    };
    Ok(Placed {
        cwd,
        root,
        template,
    })
}

/// Makes `root` ready as the registry (see [`prepare_own_root`]).
pub(super) fn prepare_root(root: &Path) -> Result<(), Error> {
    prepare_own_root(root).map_err(|why| Error::Launch {
        what: "a Slurm job".into(),
        reason: format!(
            "the registry {} {why}: other users could read or forge the jobs' files there; \
             give a directory of your own (`mkdir -m 700 {}/$USER`, then \
             FUTURIZE_REGISTRY or `Slurm::registry` naming it)",
            root.display(),
            root.display()
        ),
    })
}

/// One future's or call's directory.
pub(super) struct CallDir {
    pub(super) path: PathBuf,
    /// In every file of the call: what tells its files from any other's.
    pub(super) key: CallKey,
    keep: AtomicBool,
    /// For a cached call: the directory whose jobs record lists its jobs.
    pub(super) record: Option<PathBuf>,
}

impl CallDir {
    /// A new directory under `root`, named after this leader and `what`
    /// and ending in a random part: created here (never one that exists),
    /// this user's alone.
    pub(super) fn create(root: &Path, what: &str) -> Result<CallDir, Error> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let key = CallKey::random().map_err(|e| registry_error(Path::new("/dev/urandom"), e))?;
        let suffix = CallKey::random().map_err(|e| registry_error(Path::new("/dev/urandom"), e))?;
        let name = format!(
            "{}-{}-{what}-{n}-{}",
            host.trim(),
            std::process::id(),
            &suffix.to_string()[..16]
        );
        let path = root.join(name);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| registry_error(&path, e))?;
        Ok(CallDir {
            path,
            key,
            keep: AtomicBool::new(false),
            record: None,
        })
    }

    /// The same directory, its jobs recorded in `durable`'s jobs record.
    pub(super) fn recorded_in(mut self, durable: PathBuf) -> CallDir {
        self.record = Some(durable);
        self
    }

    /// Records `jobs` (task, job id, elements) when the call is cached.
    pub(super) fn record(
        &self,
        jobs: &[(String, String, std::ops::Range<usize>)],
    ) -> Result<(), Error> {
        let Some(durable) = &self.record else {
            return Ok(());
        };
        let dir = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let lines: Vec<Recorded> = jobs
            .iter()
            .map(|(task, job, elements)| Recorded {
                dir: dir.clone(),
                key: self.key,
                task: task.clone(),
                job: job.clone(),
                elements: elements.clone(),
            })
            .collect();
        record_jobs(durable, &lines)
    }

    /// The directory `path` of an earlier leader's call keyed `key`, taken
    /// over to wait for its jobs (removed once they are answered, as any).
    pub(super) fn adopt(path: PathBuf, key: CallKey) -> CallDir {
        CallDir {
            path,
            key,
            keep: AtomicBool::new(false),
            record: None,
        }
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

/// Writes `messages` (with their payloads) as frames into `task`'s file
/// `path` of the call keyed `key`, a new file after the header.
pub(super) fn write_frames(
    path: &Path,
    key: &CallKey,
    task: &str,
    messages: &[(ToWorker, &[u8])],
) -> Result<(), Error> {
    let file = create_private(path, 0o600).map_err(|e| registry_error(path, e))?;
    let mut out = BufWriter::new(file);
    write_header(&mut out, key, task).map_err(|e| registry_error(path, e))?;
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

/// Checks a job template: [`COMMAND_PLACEHOLDER`] stands alone on its line
/// (inside quotes or after other words, the quoted command would be quoted
/// again, and a path holding `$(...)` would run).
pub(super) fn check_template(text: &str) -> Result<(), String> {
    let mut found = false;
    for (n, line) in text.lines().enumerate() {
        if !line.contains(COMMAND_PLACEHOLDER) {
            continue;
        }
        if line.trim() != COMMAND_PLACEHOLDER {
            return Err(format!(
                "line {} holds `{COMMAND_PLACEHOLDER}` among other text (`{}`): it must stand \
                 alone on its line, where the job's command goes",
                n + 1,
                line.trim()
            ));
        }
        found = true;
    }
    if found {
        Ok(())
    } else {
        Err(format!(
            "it has no line `{COMMAND_PLACEHOLDER}` where the job's command goes"
        ))
    }
}

/// The job script: the template (or a bare shell script) with the command
/// that runs `task` of `dir` with this executable. `task` may name the
/// array index as `$SLURM_ARRAY_TASK_ID`.
pub(super) fn job_script(
    template: Option<&str>,
    dir: &Path,
    task: &str,
    limit: Option<std::time::Duration>,
) -> Result<String, Error> {
    let exe = std::env::current_exe().map_err(|e| Error::Launch {
        what: "a Slurm job".into(),
        reason: format!("the leader's executable: {e}"),
    })?;
    let quote = |p: &Path| format!("'{}'", p.to_string_lossy().replace('\'', r"'\''"));
    let limit = limit.map_or(String::new(), |l| {
        format!("{JOB_TIME_LIMIT_ENV}={} ", l.as_secs())
    });
    let command = format!(
        "{JOB_ENV}={dir} {JOB_TASK_ENV}=\"{task}\" {limit}exec {exe}",
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
    let path = dir.join(name);
    let mut file = create_private(&path, 0o700).map_err(|e| registry_error(&path, e))?;
    file.write_all(script.as_bytes())
        .map_err(|e| registry_error(&path, e))?;
    Ok(path)
}

/// The frames of `job`'s answer file `path` for `task` of the call keyed
/// `key`. Anything else than a complete answer of this very task (another
/// user's file, another call's, a truncated or garbled one) is a protocol
/// error naming the job and the file.
pub(super) fn read_answers(
    path: &Path,
    key: &CallKey,
    task: &str,
    job: &str,
) -> Result<Vec<(FromWorker, Vec<u8>)>, Error> {
    let refused = |why: String| {
        Error::Protocol(format!(
            "the answer of Slurm job {job} ({}) was refused: {why}",
            path.display()
        ))
    };
    let file = open_own(path).map_err(|e| refused(e.to_string()))?;
    let length = file.metadata().map_or(u64::MAX, |m| m.len());
    let mut input = BufReader::new(file);
    expect_header(&mut input, key, task).map_err(refused)?;
    let mut frames = Vec::new();
    loop {
        match wire::read_message::<_, FromWorker>(&mut input, codec::max_frame_bytes()) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return Ok(frames),
            // A frame longer than the whole file is garbage, not a large
            // value: no hint about frame limits then.
            Err(Error::TooLarge { size, .. }) if size > length => {
                return Err(refused(format!(
                    "it is garbled or truncated (frame {} claims {size} bytes in a file of \
                     {length})",
                    frames.len() + 1
                )));
            }
            Err(e) => {
                return Err(refused(format!(
                    "it is not a complete answer (frame {}: {e})",
                    frames.len() + 1
                )));
            }
        }
    }
}

/// The last lines of a job's log as they are (empty when there is none),
/// to read why it ended.
pub(super) fn log_text(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("futurize-registry-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_command_stands_alone_on_its_template_line() {
        assert!(check_template("#!/bin/sh\n#SBATCH -p x\n  {{command}}\n").is_ok());
        let e = check_template("#!/bin/sh\necho \"{{command}}\"\n").unwrap_err();
        assert!(
            e.contains("line 2 holds `{{command}}` among other text"),
            "{e}"
        );
        let e = check_template("#!/bin/sh\nsrun hostname\n").unwrap_err();
        assert!(e.contains("has no line `{{command}}`"), "{e}");
    }

    #[test]
    fn a_root_open_to_other_users_is_refused() {
        let shared = scratch("shared");
        std::fs::create_dir_all(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let e = prepare_root(&shared).unwrap_err().to_string();
        assert!(e.contains("is writable by other users (mode 1777)"), "{e}");
        assert!(e.contains("mkdir -m 700"), "{e}");
        // A directory of one's own inside it is fine, and created 0700.
        let own = shared.join("me");
        prepare_root(&own).unwrap();
        let mode = std::fs::metadata(&own).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::remove_dir_all(&shared).unwrap();
    }

    #[test]
    fn call_directories_are_fresh_private_and_unguessable() {
        let root = scratch("calls");
        prepare_root(&root).unwrap();
        let a = CallDir::create(&root, "future").unwrap();
        let b = CallDir::create(&root, "future").unwrap();
        assert_ne!(a.key, b.key);
        let mode = std::fs::metadata(&a.path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // Names end in 16 random hex digits: nobody can make one beforehand.
        let name = a.path.file_name().unwrap().to_string_lossy().to_string();
        let suffix = name.rsplit('-').next().unwrap();
        assert_eq!(suffix.len(), 16, "{name}");
        assert!(suffix.chars().all(|c| c.is_ascii_hexdigit()), "{name}");
        drop((a, b));
        assert_eq!(
            std::fs::read_dir(&root).unwrap().count(),
            0,
            "removed once done"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn answers_of_another_call_or_garbage_are_refused_naming_job_and_file() {
        let root = scratch("answers");
        prepare_root(&root).unwrap();
        let dir = CallDir::create(&root, "future").unwrap();
        let other = CallDir::create(&root, "future").unwrap();
        let path = task_result(&dir.path, "future");
        // An answer written for the other call (a stale file of an earlier
        // run would be the same): refused by its key.
        write_frames(&path, &other.key, "future", &[]).unwrap();
        let e = read_answers(&path, &dir.key, "future", "77")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Slurm job 77"), "{e}");
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(e.contains("another call"), "{e}");
        // Garbage after a right header: no hint about frame limits.
        std::fs::remove_file(&path).unwrap();
        let mut file = create_private(&path, 0o600).unwrap();
        write_header(&mut file, &dir.key, "future").unwrap();
        file.write_all(&[0x8f, 0x12, 0x0c, 0x7e, 1, 2, 3]).unwrap();
        let e = read_answers(&path, &dir.key, "future", "77")
            .unwrap_err()
            .to_string();
        assert!(e.contains("garbled or truncated"), "{e}");
        assert!(!e.contains("FUTURIZE_MAX_FRAME_BYTES"), "{e}");
        // The right header and no frames: read, empty (the watcher then
        // says it holds no result).
        std::fs::remove_file(&path).unwrap();
        write_frames(&path, &dir.key, "future", &[]).unwrap();
        assert!(
            read_answers(&path, &dir.key, "future", "77")
                .unwrap()
                .is_empty()
        );
        drop((dir, other));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
