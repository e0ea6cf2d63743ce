//! Capture of file descriptors 1 and 2 while a worker process runs tasks,
//! so that everything a task writes (its body, the functions it calls, C
//! code) is captured and sent back with its answer.
//!
//! Invariant: between tasks the capture files stay in place and empty; a task
//! that prints nothing costs two `lseek`s.

use crate::protocol::Output;
use crate::relay;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Two files that fds 1 and 2 point at while tasks run, and copies of what
/// fds 1 and 2 were. The files stay in place between tasks until the worker
/// ends.
pub(crate) struct FdCapture {
    out: File,
    err: File,
    saved_out: OwnedFd,
    saved_err: OwnedFd,
    in_place: bool,
}

fn memory_file(name: &std::ffi::CStr) -> std::io::Result<File> {
    // SAFETY: a valid C string; the returned descriptor is owned here.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        // Kernels without memfd: an unlinked temporary file does as well.
        let path = std::env::temp_dir().join(format!(
            "futurize-{}-{}",
            std::process::id(),
            name.to_string_lossy()
        ));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        let _ = std::fs::remove_file(&path);
        return Ok(file);
    }
    // SAFETY: `fd` was just created and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn duplicate(fd: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: a close-on-exec copy of a descriptor of this process (so
    // programs a body starts do not inherit it); the copy is owned here.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if copy < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `copy` is a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

fn point(fd: i32, at: i32) {
    // SAFETY: both descriptors are open in this process.
    unsafe { libc::dup2(at, fd) };
}

fn flush_all() {
    let _ = std::io::stdout().flush();
    // SAFETY: fflush(NULL) flushes every C stdio stream.
    unsafe { libc::fflush(std::ptr::null_mut()) };
}

impl FdCapture {
    /// Capture into `files` (opened from paths the leader gave, so the
    /// leader can read the end of a dead worker's stderr), else into memfds.
    pub(crate) fn new(files: Option<(File, File)>) -> std::io::Result<FdCapture> {
        if relay::original_stderr().is_none() {
            relay::keep_original_stderr(duplicate(2)?);
        }
        let (out, err) = match files {
            Some(files) => files,
            None => (memory_file(c"stdout")?, memory_file(c"stderr")?),
        };
        Ok(FdCapture {
            out,
            err,
            saved_out: duplicate(1)?,
            saved_err: duplicate(2)?,
            in_place: false,
        })
    }

    /// Points fds 1 and 2 at the files (`true`) or back (`false`).
    fn place(&mut self, capture: bool) {
        if self.in_place == capture {
            return;
        }
        flush_all();
        if capture {
            point(1, self.out.as_raw_fd());
            point(2, self.err.as_raw_fd());
        } else {
            point(1, self.saved_out.as_raw_fd());
            point(2, self.saved_err.as_raw_fd());
        }
        self.in_place = capture;
    }

    /// Runs `f` with fds 1 and 2 captured; returns what was written, or
    /// nothing when `keep` is false (the output is silenced).
    pub(crate) fn run<R>(&mut self, keep: bool, f: impl FnOnce() -> R) -> (R, Output) {
        self.place(true);
        let value = f();
        flush_all();
        if !keep {
            empty(&mut self.out);
            empty(&mut self.err);
            return (value, Output::default());
        }
        let output = Output {
            stdout: drain(&mut self.out),
            stderr: drain(&mut self.err),
        };
        (value, output)
    }
}

impl Drop for FdCapture {
    fn drop(&mut self) {
        self.place(false);
    }
}

fn empty(file: &mut File) {
    let _ = file.set_len(0);
    let _ = file.seek(SeekFrom::Start(0));
}

fn drain(file: &mut File) -> Vec<u8> {
    let mut bytes = Vec::new();
    let end = file.stream_position().unwrap_or(0);
    if end == 0 {
        return bytes;
    }
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_end(&mut bytes);
    let _ = file.set_len(0);
    let _ = file.seek(SeekFrom::Start(0));
    bytes
}
