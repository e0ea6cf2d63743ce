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
//!
//! Trust: a call's directory is this user's alone (mode 0700, created fresh
//! under an unguessable name), its files are created new (never through a
//! link, never an existing file) with mode 0600, and every file starts with
//! a header line naming the call's random key and the task it belongs to
//! ([`write_header`]). A job reads nothing from a directory or file that is
//! not its user's; the leader believes no answer whose header is not its
//! call's key and the task it asked for.

use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The directory of the call whose task this process runs, as a job.
pub(crate) const JOB_ENV: &str = "FUTURIZE_JOB";

/// Which task of the call: `future`, `chunk-3`.
pub(crate) const JOB_TASK_ENV: &str = "FUTURIZE_JOB_TASK";

/// The job's time limit in seconds, when the leader asked for one.
pub(crate) const JOB_TIME_LIMIT_ENV: &str = "FUTURIZE_JOB_TIME_LIMIT";

/// The part of the input every task of a call shares.
pub(crate) const CALL_INPUT: &str = "call.in";

/// The task name in the header of [`CALL_INPUT`].
pub(crate) const CALL_TASK: &str = "call";

/// The task's own input.
pub(crate) fn input_of(dir: &Path, task: &str) -> PathBuf {
    dir.join(format!("{task}.in"))
}

/// The task's answers, once complete.
pub(crate) fn result_of(dir: &Path, task: &str) -> PathBuf {
    dir.join(format!("{task}.out"))
}

/// What every registry file starts with, before its key and task.
const MAGIC: &str = "futurize-registry-file-1";

/// The longest header line read: the magic, 32 hex digits, a task name.
const HEADER_MAX: u64 = 256;

/// A call's key: 16 random bytes in every file of the call, so that a file
/// of another call (an earlier run's, or one put there by someone else) is
/// never taken for one of this call's.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct CallKey([u8; 16]);

impl CallKey {
    /// A new key from the system's random source.
    pub(crate) fn random() -> io::Result<CallKey> {
        random_bytes().map(CallKey)
    }

    /// The key written as hex (its `Display`).
    pub(crate) fn parse(hex: &str) -> Option<CallKey> {
        if hex.len() != 32 || !hex.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(CallKey(bytes))
    }
}

impl std::fmt::Display for CallKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&super::hex(&self.0))
    }
}

/// Writes the header line of a file of `task` of the call keyed `key`.
pub(crate) fn write_header(out: &mut impl Write, key: &CallKey, task: &str) -> io::Result<()> {
    writeln!(out, "{MAGIC} {key} {task}")
}

/// Reads a file's header line: the key of its call and its task.
pub(crate) fn read_header(input: &mut impl BufRead) -> Result<(CallKey, String), String> {
    let mut line = Vec::new();
    input
        .take(HEADER_MAX)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("it cannot be read: {e}"))?;
    let text = String::from_utf8_lossy(&line);
    let mut parts = text.trim_end_matches('\n').splitn(3, ' ');
    let (magic, key, task) = (parts.next(), parts.next(), parts.next());
    if magic != Some(MAGIC) || !line.ends_with(b"\n") {
        return Err("it is not a futurize registry file (no header line)".into());
    }
    let key = key
        .and_then(CallKey::parse)
        .ok_or("its header holds no valid key")?;
    Ok((key, task.unwrap_or("").to_string()))
}

/// Reads a file's header line and checks that it is of `task` of the call
/// keyed `key`; the complaint says what it is instead.
pub(crate) fn expect_header(
    input: &mut impl BufRead,
    key: &CallKey,
    task: &str,
) -> Result<(), String> {
    let (their_key, their_task) = read_header(input)?;
    if their_key != *key {
        return Err(
            "it belongs to another call (its key is not this call's: a stale or forged file)"
                .into(),
        );
    }
    if their_task != task {
        return Err(format!(
            "it is the file of task `{their_task}`, not of `{task}`"
        ));
    }
    Ok(())
}

/// `N` bytes from the system's random source.
pub(crate) fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// This process's effective user id.
pub(crate) fn own_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Creates `path` new for writing with `mode`: never an existing file and
/// never through a symbolic link.
pub(crate) fn create_private(path: &Path, mode: u32) -> io::Result<File> {
    File::options()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Opens `path` for reading when it is a regular file of this user's,
/// reached without following a symbolic link.
pub(crate) fn open_own(path: &Path) -> io::Result<File> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("it is not a regular file"));
    }
    if meta.uid() != own_uid() {
        return Err(io::Error::other(format!(
            "it belongs to uid {}, not to this user (uid {})",
            meta.uid(),
            own_uid()
        )));
    }
    Ok(file)
}

/// Makes `root` ready to hold this user's files (the Slurm registry, the
/// cache): created 0700 when missing; else it must be a directory of this
/// user's that no other user can write to. A shared scratch directory
/// (mode 1777) is refused: a directory of one's own inside it is the one to
/// give. The complaint completes "the registry <root> …".
pub(crate) fn prepare_own_root(root: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    if !root.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| format!("cannot be created: {e}"))?;
    }
    let meta = std::fs::metadata(root).map_err(|e| format!("cannot be read: {e}"))?;
    if !meta.is_dir() {
        return Err("is not a directory".into());
    }
    if meta.uid() != own_uid() {
        return Err(format!(
            "belongs to uid {}, not to this user (uid {})",
            meta.uid(),
            own_uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "is writable by other users (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Checks that `dir` is a directory of this user's that nobody else can
/// read or write (a call's directory is created 0700).
pub(crate) fn check_private_dir(dir: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(dir).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Err("it is not a directory".into());
    }
    if meta.uid() != own_uid() {
        return Err(format!(
            "it belongs to uid {}, not to this user (uid {})",
            meta.uid(),
            own_uid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "other users have access to it (mode {:o}; a call's directory is 0700)",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_is_taken_only_for_its_own_key_and_task() {
        let key = CallKey::random().unwrap();
        let other = CallKey::random().unwrap();
        assert_ne!(key, other);
        let mut file = Vec::new();
        write_header(&mut file, &key, "chunk-3").unwrap();
        file.extend_from_slice(b"frames");
        let mut input = &file[..];
        expect_header(&mut input, &key, "chunk-3").unwrap();
        assert_eq!(input, b"frames", "the header is consumed, the rest left");
        let e = expect_header(&mut &file[..], &other, "chunk-3").unwrap_err();
        assert!(e.contains("another call"), "{e}");
        let e = expect_header(&mut &file[..], &key, "chunk-4").unwrap_err();
        assert!(e.contains("`chunk-3`, not of `chunk-4`"), "{e}");
        for garbage in [
            &b"\x8f\x12\x00\x7e garbage"[..],
            b"",
            b"futurize-registry-file-1 zz x\n",
        ] {
            assert!(expect_header(&mut &garbage[..], &key, "x").is_err());
        }
    }

    #[test]
    fn private_files_are_created_new_and_never_through_a_link() {
        let dir = std::env::temp_dir().join(format!("futurize-job-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "mine").unwrap();
        let link = dir.join("task.in");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(create_private(&link, 0o600).is_err());
        assert!(open_own(&link).is_err(), "a link is not opened");
        assert!(create_private(&victim, 0o600).is_err(), "an existing file");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "mine");
        let fresh = dir.join("fresh");
        create_private(&fresh, 0o600).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(open_own(&fresh).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
