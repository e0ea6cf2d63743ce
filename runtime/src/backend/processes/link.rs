//! Links and launchers: how a worker process comes to be and how the pool
//! talks to it.
//!
//! A [`Link`] is a child process whose stdin and stdout carry frames; the
//! pool, its reader threads and dispatch see nothing else of a worker. A
//! [`Launcher`] starts one: [`LocalLauncher`] re-executes this binary on this
//! machine. Other launchers (over ssh, srun) plug in here without touching
//! the pool, the reader or dispatch.
//!
//! Invariant: a link is handed to the pool only after a completed handshake
//! with a worker of this very build ([`handshake`]); a refused or broken
//! handshake is an error naming both sides, and the child is reaped.

use crate::Error;
use crate::protocol::wire::{self, FromWorker, ToWorker};
use crate::protocol::{CAPTURE_ENV, WORKER_ENV, codec, hex, identity};
use crate::{Plan, relay};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The channel to one worker, and the process behind it.
pub(crate) struct Link {
    /// Frames to the worker.
    pub(crate) input: Box<dyn Write + Send>,
    /// Frames from the worker.
    pub(crate) output: BufReader<Box<dyn Read + Send>>,
    /// The process serving the link.
    pub(crate) process: Box<dyn WorkerProcess>,
}

/// The process at the far end of a link, as the pool controls it.
pub(crate) trait WorkerProcess: Send {
    /// Ends it now (a cancelled or timed-out task, a refused handshake).
    fn kill(&mut self);
    /// Waits for it to end; how it ended, in words (`exit status 3`,
    /// `killed by signal 9 (SIGKILL)`).
    fn wait(&mut self) -> String;
    /// The handshake is over: what was kept for it can go.
    fn handshake_done(&mut self) {}
    /// The end of what it wrote to stderr during its last task, if kept.
    fn stderr_tail(&self) -> Option<String> {
        None
    }
    /// Where it runs, for messages: `None` on this machine.
    fn host(&self) -> Option<&str> {
        None
    }
    /// Its process id, where the launcher knows it before the handshake.
    fn os_pid(&self) -> Option<u32> {
        None
    }
    /// How it gets a call's captures another way than its own channel,
    /// where there is one: a remote worker's host agent keeps them for all
    /// its workers. `None`: on the channel.
    fn captures_through_host(&self) -> Option<HostCaptures> {
        None
    }
    /// Whether it must take no more work (its host drains): the pool ends
    /// it when it is next idle.
    fn retired(&self) -> bool {
        false
    }
    /// Hands the worker's frames to `sink` where they arrive, with no
    /// thread of their own (after the handshake, read from `output`);
    /// gives both back when they must be read from `output`.
    fn deliver(
        &mut self,
        output: BufReader<Box<dyn Read + Send>>,
        sink: Box<dyn FrameSink>,
    ) -> Result<(), NotDelivered> {
        Err((output, sink))
    }
}

/// Where a worker's frames go once it has answered the handshake.
pub(crate) trait FrameSink: Send {
    /// One frame: `Err` says how it broke the protocol (the channel is then
    /// ended with that problem).
    fn frame(&mut self, message: FromWorker, payload: Vec<u8>) -> Result<(), String>;
    /// The channel ended: `None` when it closed cleanly between frames.
    /// Runs on a thread that may wait for the worker process to end.
    fn end(self: Box<Self>, problem: Option<String>);
}

/// What [`WorkerProcess::deliver`] gives back when frames must be read from
/// the link's own output.
pub(crate) type NotDelivered = (BufReader<Box<dyn Read + Send>>, Box<dyn FrameSink>);

/// Gives a worker the captures of call `call` (their bytes) another way
/// than its channel: the bytes sent, or why not.
pub(crate) type HostCaptures =
    std::sync::Arc<dyn Fn(u64, &[u8]) -> Result<u64, crate::Error> + Send + Sync>;

/// Starts worker processes for a pool.
pub(crate) trait Launcher: Send + Sync {
    /// Starts one worker (before its handshake).
    fn launch(&self) -> Result<Link, Error>;
    /// A call's captures are about to go to this pool's workers: a launcher
    /// whose hosts keep them for their workers starts sending them to every
    /// host it reaches now, all at once, and returns (the bytes sent are
    /// counted in `BYTES_SENT`).
    fn prepare_call(&self, call: &std::sync::Arc<crate::backend::CallCaptures>) {
        let _ = call;
    }
    /// The most one worker can have.
    fn capacity(&self) -> crate::plan::Capacity;
    /// Whether starting a worker may wait long (for a Slurm allocation):
    /// the pool then starts workers on threads of their own and gives work
    /// to whichever worker is free first.
    fn starts_slowly(&self) -> bool {
        false
    }
    /// How long a worker may be idle before the pool ends it (`None`:
    /// never).
    fn idle_limit(&self) -> Option<std::time::Duration> {
        None
    }
    /// The pool's demand for workers, for a launcher that gives up starting
    /// workers no longer wanted.
    fn attach(&self, demand: std::sync::Arc<Demand>) {
        let _ = demand;
    }
}

/// How much a pool's callers want a worker: how many wait for one now, and
/// when one last had to wait.
#[derive(Default)]
pub(crate) struct Demand {
    pub(crate) waiting: AtomicUsize,
    last_waited: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Demand {
    /// A caller waits for a worker now.
    pub(crate) fn waited(&self) {
        *crate::sync::lock(&self.last_waited) = Some(std::time::Instant::now());
    }

    /// Whether a caller waits now.
    pub(crate) fn wanted(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }

    /// Whether a caller waits now, or had to wait within `within`.
    pub(crate) fn wanted_within(&self, within: std::time::Duration) -> bool {
        self.wanted() || crate::sync::lock(&self.last_waited).is_some_and(|t| t.elapsed() <= within)
    }
}

/// The thread-count variables of the common parallel libraries (rayon,
/// OpenMP, OpenBLAS, MKL).
pub(crate) const THREAD_VARIABLES: [&str; 4] = [
    "RAYON_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
];

/// What each of `workers` local worker processes gets so that rayon or a
/// BLAS inside bodies does not oversubscribe: its share of the cores (at
/// least one) in each of [`THREAD_VARIABLES`], except those the user set.
pub(crate) fn thread_shares(workers: usize) -> Vec<(String, String)> {
    let share = (crate::cores::available_cores() / workers.max(1)).max(1);
    THREAD_VARIABLES
        .iter()
        .filter(|v| std::env::var_os(v).is_none())
        .map(|v| (v.to_string(), share.to_string()))
        .collect()
}

/// Starts workers on this machine: this executable, run again with the
/// worker marker in its environment (and, for a host agent, the variables
/// and working directory its leader asked for).
#[derive(Default)]
pub(crate) struct LocalLauncher {
    /// Variables the workers get besides this process's own.
    pub(crate) env: Vec<(String, String)>,
    /// Where the workers start; this process's working directory when `None`.
    pub(crate) cwd: Option<PathBuf>,
}

impl Launcher for LocalLauncher {
    fn capacity(&self) -> crate::plan::Capacity {
        crate::backend::this_machine("worker processes on this machine".into())
    }

    fn launch(&self) -> Result<Link, Error> {
        let stderr = match relay::original_stderr() {
            Some(fd) => Stdio::from(fd.map_err(launch_error)?),
            None => Stdio::inherit(),
        };
        let capture = Some(CaptureFiles::create()?);
        let mut command = Command::new("/proc/self/exe");
        command
            .env(WORKER_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if let Some(c) = &capture {
            command.env(CAPTURE_ENV, c.env_value());
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                if let Some(c) = &capture {
                    c.unlink();
                }
                return Err(launch_error(e));
            }
        };
        let input = child.stdin.take().expect("piped stdin");
        let output = child.stdout.take().expect("piped stdout");
        Ok(Link {
            input: Box::new(input),
            output: BufReader::new(Box::new(output)),
            process: Box::new(LocalProcess { child, capture }),
        })
    }
}

/// A worker process on this machine.
struct LocalProcess {
    child: Child,
    capture: Option<CaptureFiles>,
}

impl WorkerProcess for LocalProcess {
    fn kill(&mut self) {
        let _ = self.child.kill();
    }

    fn wait(&mut self) -> String {
        self.child
            .wait()
            .map(describe_exit)
            .unwrap_or_else(|e| e.to_string())
    }

    fn handshake_done(&mut self) {
        // The worker opened the capture files before it answered (or never will).
        if let Some(c) = &self.capture {
            c.unlink();
        }
    }

    fn stderr_tail(&self) -> Option<String> {
        stderr_tail(self.capture.as_ref().map(|c| &c.stderr))
    }

    fn os_pid(&self) -> Option<u32> {
        Some(self.child.id())
    }
}

pub(crate) fn launch_error(reason: impl std::fmt::Display) -> Error {
    Error::Launch {
        what: "a worker process".into(),
        reason: reason.to_string(),
    }
}

/// Greets the worker at the far end of `link`; its pid once it has
/// accepted. `nested` is the plan its bodies see.
pub(crate) fn handshake(link: &mut Link, nested: &Plan) -> Result<u32, Error> {
    let limit = codec::max_frame_bytes();
    let hello = ToWorker::hello(nested.to_string());
    let answer = wire::write_message(&mut link.input, &hello, &[], limit)
        .and_then(|()| wire::read_message::<_, FromWorker>(&mut link.output, limit));
    link.process.handshake_done();
    match check_answer(answer) {
        Answer::Ready(pid) => Ok(pid),
        Answer::Mismatch(why) => {
            link.process.kill();
            link.process.wait();
            Err(Error::Protocol(why))
        }
        Answer::Refused(why) => {
            link.process.wait();
            Err(Error::Protocol(why))
        }
        Answer::Incomplete(what) => {
            link.process.kill();
            let status = link.process.wait();
            Err(launch_error(format!(
                "the worker did not complete the handshake ({status}): {what}"
            )))
        }
    }
}

/// What a worker's answer to the handshake means to the leader.
#[derive(Debug)]
pub(crate) enum Answer {
    /// It serves; its process id.
    Ready(u32),
    /// It answered, but speaks another version or runs another build.
    Mismatch(String),
    /// It refused the leader, saying why.
    Refused(String),
    /// It said something else, or nothing.
    Incomplete(String),
}

/// Reads a worker's answer to the handshake (what `read_message` gave).
pub(crate) fn check_answer(answer: Result<Option<(FromWorker, Vec<u8>)>, Error>) -> Answer {
    match answer {
        Ok(Some((
            FromWorker::Ready {
                version,
                build_id,
                pid,
            },
            _,
        ))) => {
            if version != wire::PROTOCOL_VERSION || build_id != identity::build_id() {
                return Answer::Mismatch(format!(
                    "worker {pid} answered with protocol {version} and build {}, \
                     the leader has protocol {} and build {}",
                    hex(&build_id),
                    wire::PROTOCOL_VERSION,
                    hex(identity::build_id())
                ));
            }
            Answer::Ready(pid)
        }
        Ok(Some((FromWorker::Refused { reason }, _))) => {
            Answer::Refused(format!("the worker refused the leader: {reason}"))
        }
        other => Answer::Incomplete(format!("{other:?}")),
    }
}

/// Two files for a worker's captured stdout and stderr, created here so
/// that the leader can still read them when the worker has died. Their
/// names are removed once the worker has opened them.
struct CaptureFiles {
    paths: [PathBuf; 2],
    stderr: File,
}

impl CaptureFiles {
    /// Two new files in the temporary directory (`TMPDIR`, else `/tmp`); a
    /// directory that is missing, read-only or full is an error naming it.
    fn create() -> Result<CaptureFiles, Error> {
        use std::os::unix::fs::OpenOptionsExt;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = |stream: &str| {
            std::env::temp_dir().join(format!(
                "futurize-{}-{n}-{nanos:08x}-{stream}",
                std::process::id()
            ))
        };
        let paths = [path("stdout"), path("stderr")];
        // Private to this user, and only files this call created.
        let create = |p: &PathBuf| {
            File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(p)
        };
        let out = create(&paths[0]);
        let stderr = create(&paths[1]);
        match (out, stderr) {
            (Ok(_), Ok(stderr)) => Ok(CaptureFiles { paths, stderr }),
            (out, stderr) => {
                if out.is_ok() {
                    let _ = std::fs::remove_file(&paths[0]);
                }
                if stderr.is_ok() {
                    let _ = std::fs::remove_file(&paths[1]);
                }
                let why = out.err().or(stderr.err()).expect("one of them failed");
                Err(launch_error(format!(
                    "its output is captured in files of the temporary directory {}, and \
                     creating one there failed: {why}; set TMPDIR to a writable directory \
                     with free space",
                    std::env::temp_dir().display()
                )))
            }
        }
    }

    fn env_value(&self) -> String {
        format!("{}\n{}", self.paths[0].display(), self.paths[1].display())
    }

    /// Removes the names; the worker (if it started) holds the files open.
    fn unlink(&self) {
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for CaptureFiles {
    /// Whatever became of the worker (a start abandoned before its
    /// handshake, say), no name outlives the files' keeper.
    fn drop(&mut self) {
        self.unlink();
    }
}

/// The end of what a dead worker wrote to stderr during its last task, for
/// the error that reports its death: its last few lines, leaving out the
/// frames of a backtrace (the message before them is what explains).
fn stderr_tail(capture: Option<&File>) -> Option<String> {
    const READ: u64 = 256 << 10;
    const LINES: usize = 5;
    const CHARS: usize = 2000;
    let mut file = capture?;
    let size = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(size.saturating_sub(READ))).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    // A Rust backtrace: `stack backtrace:`, then numbered frames and their
    // `at file:line` lines, then perhaps a note.
    let is_frame = |t: &str| {
        t.split_once(": ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            || t.starts_with("at ")
            || t.starts_with("note: Some details are omitted")
    };
    let mut in_backtrace = false;
    let mut lines: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim_end) {
        let t = line.trim_start();
        if t == "stack backtrace:" {
            in_backtrace = true;
            continue;
        }
        if in_backtrace && is_frame(t) {
            continue;
        }
        in_backtrace = false;
        if !t.is_empty() {
            lines.push(line);
        }
    }
    let words = lines[lines.len().saturating_sub(LINES)..].join("\n");
    let words: String = words.chars().take(CHARS).collect();
    (!words.is_empty()).then_some(words)
}

/// `killed by signal 9 (SIGKILL)`, `exit status 3`, …
pub(crate) fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exit status {code}")
    } else if let Some(signal) = status.signal() {
        let name = match signal {
            libc::SIGHUP => " (SIGHUP)",
            libc::SIGINT => " (SIGINT)",
            libc::SIGABRT => " (SIGABRT)",
            libc::SIGKILL => " (SIGKILL)",
            libc::SIGSEGV => " (SIGSEGV)",
            libc::SIGPIPE => " (SIGPIPE)",
            libc::SIGTERM => " (SIGTERM)",
            _ => "",
        };
        format!("killed by signal {signal}{name}")
    } else {
        status.to_string()
    }
}
