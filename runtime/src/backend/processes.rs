//! Multiprocess: persistent local worker processes (R's `multisession`), or a
//! fresh process per future (`callr`).
//!
//! Each worker is this executable started again (see `worker.rs`), talking
//! over its stdin/stdout pipes: no port is opened and no other process can
//! reach it. One reader thread per worker turns its replies into filled
//! result slots. A worker that dies takes only its own future with it: that
//! future's value is `Error::WorkerDied` (pid, signal or exit status, label),
//! and the pool starts a replacement when one is next needed.
//!
//! Admission follows R: creating a future while every worker is busy blocks
//! until one is free. Workers start on first need, up to `n`.

use super::{Backend, ChunkProgress, ChunkTask, ResultSlot, Submitted, Task};
use crate::execute::TimeLimit;
use crate::relay::Output;
use crate::wire::{self, FromWorker, LogRecord, Outcome, TaskSettings, ToWorker};
use crate::worker::{CAPTURE_ENV, WORKER_ENV, hex, level_filter, level_number};
use crate::{Error, Plan, codec, identity};
use std::fs::File;
use std::io::BufReader;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// The future a worker is running.
struct Running {
    id: u64,
    slot: Arc<ResultSlot>,
    task: Dispatch,
}

/// What the reader needs to know of a task, besides its messages.
#[derive(Clone)]
struct Dispatch {
    label: Option<String>,
    /// Its `timeout`, as the user wrote it.
    timeout: Option<String>,
    /// The bar of the call a chunk belongs to.
    progress: Option<Arc<ChunkProgress>>,
}

/// What a task runs with on its worker.
fn settings(capture_output: bool, timeout: Option<&TimeLimit>, progress: bool) -> TaskSettings {
    TaskSettings {
        capture_output,
        log_level: level_number(log::max_level()),
        timeout_ms: timeout.map(TimeLimit::millis),
        progress,
    }
}

struct WorkerProcess {
    pid: u32,
    /// The `foreach!` call whose captures this worker holds.
    cached_call: Mutex<Option<u64>>,
    /// Set when the pool killed this worker: it must never be reused, even
    /// if it answered before the signal landed.
    killed: AtomicBool,
    /// The task (and element) that ran past its time limit: the worker said
    /// so and ends.
    timed_out: Mutex<Option<(u64, Option<u64>)>>,
    /// `None` once the pool has closed this worker's channel.
    input: Mutex<Option<ChildStdin>>,
    child: Mutex<Child>,
    running: Mutex<Option<Running>>,
    /// Set, under `running`, when the reader has seen the channel end: a task
    /// given to this worker afterwards would never be answered.
    ended: AtomicBool,
    /// The file the worker's stderr is captured in while a task runs: what
    /// it holds when the worker dies are its last words.
    stderr_capture: Option<File>,
}

/// Two files for a worker's captured stdout and stderr, created here so
/// that the leader can still read them when the worker has died. Their
/// names are removed once the worker has opened them.
struct CaptureFiles {
    paths: [PathBuf; 2],
    stderr: File,
}

impl CaptureFiles {
    fn create() -> Option<CaptureFiles> {
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
            (Ok(_), Ok(stderr)) => Some(CaptureFiles { paths, stderr }),
            (out, stderr) => {
                if out.is_ok() {
                    let _ = std::fs::remove_file(&paths[0]);
                }
                if stderr.is_ok() {
                    let _ = std::fs::remove_file(&paths[1]);
                }
                None
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

/// The end of what a dead worker wrote to stderr during its last task, for
/// the error that reports its death: its last few lines, leaving out the
/// frames of a backtrace (the message before them is what explains).
fn last_words(capture: Option<&File>) -> Option<String> {
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

struct PoolState {
    idle: Vec<Arc<WorkerProcess>>,
    live: usize,
    closed: bool,
}

struct Shared {
    state: Mutex<PoolState>,
    freed: Condvar,
    size: usize,
    fresh: bool,
    nested: String,
    next_id: AtomicU64,
}

pub(crate) struct ProcessPool {
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ProcessPool {
    pub(crate) fn start(size: usize, fresh: bool, nested: &Plan) -> Result<ProcessPool, Error> {
        if std::env::var_os(WORKER_ENV).is_some() {
            return Err(Error::Launch {
                what: "worker processes".into(),
                reason: format!(
                    "{WORKER_ENV} is set in this process, so it was meant to be a worker, \
                     but futurize's start-up hook did not take it over; is this platform \
                     supported (Linux/ELF)?"
                ),
            });
        }
        Ok(ProcessPool {
            shared: Arc::new(Shared {
                state: Mutex::new(PoolState {
                    idle: Vec::new(),
                    live: 0,
                    closed: false,
                }),
                freed: Condvar::new(),
                size,
                fresh,
                nested: nested.to_string(),
                next_id: AtomicU64::new(1),
            }),
        })
    }
}

impl Shared {
    /// An idle worker, starting one if fewer than `size` live; blocks while
    /// all are busy.
    fn acquire(self: &Arc<Self>) -> Result<Arc<WorkerProcess>, Error> {
        let mut state = lock(&self.state);
        loop {
            if let Some(w) = state.idle.pop() {
                return Ok(w);
            }
            if state.live < self.size {
                state.live += 1;
                drop(state);
                return spawn_worker(self).inspect_err(|_| {
                    lock(&self.state).live -= 1;
                    self.freed.notify_one();
                });
            }
            state = self.freed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// A worker finished its future: back to idle, or closed.
    fn release(&self, worker: &Arc<WorkerProcess>) {
        let mut state = lock(&self.state);
        if self.fresh || state.closed || worker.killed.load(Ordering::Acquire) {
            lock(&worker.input).take();
        } else {
            state.idle.push(worker.clone());
        }
        self.freed.notify_one();
    }

    /// A worker's channel ended: it is gone, whatever the reason.
    fn forget(&self, worker: &Arc<WorkerProcess>) {
        let mut state = lock(&self.state);
        state.idle.retain(|w| !Arc::ptr_eq(w, worker));
        state.live -= 1;
        self.freed.notify_one();
    }
}

fn launch_error(reason: impl std::fmt::Display) -> Error {
    Error::Launch {
        what: "a worker process".into(),
        reason: reason.to_string(),
    }
}

fn spawn_worker(shared: &Arc<Shared>) -> Result<Arc<WorkerProcess>, Error> {
    let stderr = match crate::relay::fds::original_stderr() {
        Some(fd) => Stdio::from(fd.map_err(launch_error)?),
        None => Stdio::inherit(),
    };
    let capture = CaptureFiles::create();
    let mut command = Command::new("/proc/self/exe");
    command
        .env(WORKER_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr);
    if let Some(c) = &capture {
        command.env(CAPTURE_ENV, c.env_value());
    }
    let spawned = command.spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            if let Some(c) = &capture {
                c.unlink();
            }
            return Err(launch_error(e));
        }
    };
    let mut input = child.stdin.take().expect("piped stdin");
    let mut output = BufReader::new(child.stdout.take().expect("piped stdout"));
    let limit = codec::max_frame_bytes();
    let hello = ToWorker::Hello {
        version: wire::PROTOCOL_VERSION,
        build_id: identity::build_id().to_vec(),
        nested_plan: shared.nested.clone(),
    };
    let handshake = wire::write_message(&mut input, &hello, &[], limit)
        .and_then(|()| wire::read_message::<_, FromWorker>(&mut output, limit));
    // The worker opened the capture files before it answered (or never will).
    if let Some(c) = &capture {
        c.unlink();
    }
    let pid = match handshake {
        Ok(Some((
            FromWorker::Ready {
                version,
                build_id,
                pid,
            },
            _,
        ))) => {
            if version != wire::PROTOCOL_VERSION || build_id != identity::build_id() {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Protocol(format!(
                    "worker {pid} answered with protocol {version} and build {}, \
                     the leader has protocol {} and build {}",
                    hex(&build_id),
                    wire::PROTOCOL_VERSION,
                    hex(identity::build_id())
                )));
            }
            pid
        }
        Ok(Some((FromWorker::Refused { reason }, _))) => {
            let _ = child.wait();
            return Err(Error::Protocol(format!(
                "the worker refused the leader: {reason}"
            )));
        }
        other => {
            let _ = child.kill();
            let status = child.wait().map(describe_exit).unwrap_or_default();
            return Err(launch_error(format!(
                "the worker did not complete the handshake ({status}): {other:?}"
            )));
        }
    };
    let worker = Arc::new(WorkerProcess {
        pid,
        cached_call: Mutex::new(None),
        killed: AtomicBool::new(false),
        timed_out: Mutex::new(None),
        input: Mutex::new(Some(input)),
        child: Mutex::new(child),
        running: Mutex::new(None),
        ended: AtomicBool::new(false),
        stderr_capture: capture.map(|c| c.stderr),
    });
    let (shared2, worker2) = (shared.clone(), worker.clone());
    std::thread::Builder::new()
        .name(format!("futurize-reader-{pid}"))
        .spawn(move || read_replies(shared2, worker2, output))
        .map_err(launch_error)?;
    Ok(worker)
}

/// Turns one worker's replies into results until its channel ends.
fn read_replies(
    shared: Arc<Shared>,
    worker: Arc<WorkerProcess>,
    mut output: BufReader<ChildStdout>,
) {
    let limit = codec::max_frame_bytes();
    let ended = loop {
        match wire::read_message::<_, FromWorker>(&mut output, limit) {
            Ok(Some((
                FromWorker::Done {
                    id,
                    outcome,
                    output,
                },
                value,
            ))) => {
                let running = lock(&worker.running).take();
                match running {
                    Some(r) if r.id == id => {
                        // Free the worker first: whoever collects the value
                        // then already sees it free.
                        shared.release(&worker);
                        r.slot.set_output(output);
                        r.slot.fill(outcome_to_result(outcome, value));
                    }
                    _ => {
                        break Some(format!(
                            "an answer for future {id}, which it was not running"
                        ));
                    }
                }
            }
            Ok(Some((FromWorker::Log { id, record }, _))) => {
                let label = lock(&worker.running)
                    .as_ref()
                    .filter(|r| r.id == id)
                    .and_then(|r| r.task.label.clone());
                emit_log(record, label.as_deref());
            }
            Ok(Some((
                FromWorker::Progress {
                    id,
                    elements,
                    steps,
                    message,
                },
                _,
            ))) => {
                let progress = lock(&worker.running)
                    .as_ref()
                    .filter(|r| r.id == id)
                    .and_then(|r| r.task.progress.clone());
                if let Some(p) = progress {
                    p.reported.fetch_add(elements, Ordering::Relaxed);
                    p.bar.elements(elements);
                    if steps > 0 || message.is_some() {
                        p.bar.steps(steps, message);
                    }
                }
            }
            Ok(Some((FromWorker::TimedOut { id, index }, _))) => {
                *lock(&worker.timed_out) = Some((id, index));
            }
            Ok(Some((other, _))) => break Some(format!("an unexpected message {other:?}")),
            Ok(None) => break None,
            Err(e) => break Some(e.to_string()),
        }
    };
    // From now on no task may be given to this worker (see `dispatch`).
    {
        let _running = lock(&worker.running);
        worker.ended.store(true, Ordering::Release);
    }
    lock(&worker.input).take();
    let status = lock(&worker.child).wait();
    let running = lock(&worker.running).take();
    // Forget the worker first: whoever collects the error then sees the pool
    // without it.
    shared.forget(&worker);
    if let Some(r) = running {
        let timed_out = lock(&worker.timed_out).take().filter(|(id, _)| *id == r.id);
        if let (Some((_, index)), Some(after)) = (timed_out, r.task.timeout) {
            r.slot.fill(Err(Error::Timeout {
                after,
                label: r.task.label,
                index: index.map(|i| i as usize),
            }));
            return;
        }
        let mut cause = status.map(describe_exit).unwrap_or_else(|e| e.to_string());
        if let Some(problem) = ended {
            cause = format!("{cause}; the channel carried {problem}");
        }
        if let Some(words) = last_words(worker.stderr_capture.as_ref()) {
            cause = format!("{cause}; its last words on stderr: {words}");
        }
        r.slot.fill(Err(Error::WorkerDied {
            worker: format!("process {}", worker.pid),
            cause,
            label: r.task.label,
            index: None,
            elements: None,
        }));
    }
}

fn outcome_to_result(outcome: Outcome, value: Vec<u8>) -> Result<Vec<u8>, Error> {
    match outcome {
        Outcome::Value => Ok(value),
        Outcome::Panicked {
            message,
            location,
            backtrace,
        } => Err(Error::Panicked {
            message,
            location,
            label: None,
            index: None,
            backtrace,
        }),
        Outcome::TooLarge { size, limit } => Err(Error::TooLarge {
            what: "the value and the printed output of a future".into(),
            size,
            limit,
        }),
        Outcome::Failed { message } => Err(Error::Protocol(message)),
    }
}

/// Hands a body's `log` record to this process's logger, with level,
/// target and message as they were, and the future's label and the element
/// index as the key-values `label` and `index`.
fn emit_log(record: LogRecord, label: Option<&str>) {
    let Some(level) = level_filter(record.level).to_level() else {
        return;
    };
    if level > log::max_level() {
        return;
    }
    let mut tags: Vec<(&str, log::kv::Value<'_>)> = Vec::with_capacity(2);
    if let Some(label) = label {
        tags.push(("label", log::kv::Value::from(label)));
    }
    if let Some(index) = record.index {
        tags.push(("index", log::kv::Value::from(index)));
    }
    let tags: &[(&str, log::kv::Value<'_>)] = &tags;
    crate::progress::above_bar(|| {
        log::logger().log(
            &log::Record::builder()
                .args(format_args!("{}", record.message))
                .level(level)
                .target(&record.target)
                .module_path(record.module_path.as_deref())
                .file(record.file.as_deref())
                .line(record.line)
                .key_values(&tags)
                .build(),
        )
    });
}

/// `killed by signal 9 (SIGKILL)`, `exit status 3`, …
fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exit status {code}")
    } else if let Some(signal) = status.signal() {
        let name = match signal {
            1 => " (SIGHUP)",
            2 => " (SIGINT)",
            6 => " (SIGABRT)",
            9 => " (SIGKILL)",
            11 => " (SIGSEGV)",
            13 => " (SIGPIPE)",
            15 => " (SIGTERM)",
            _ => "",
        };
        format!("killed by signal {signal}{name}")
    } else {
        status.to_string()
    }
}

/// Bytes of captures and elements sent to worker processes, for tests and
/// benchmarks.
pub(crate) static BYTES_SENT: AtomicU64 = AtomicU64::new(0);

impl ProcessPool {
    /// Sends `messages` (each with its payload) to an idle worker, which then
    /// runs future `id`. When the channel turns out broken before the task
    /// could start (the worker died while idle), the task goes to another
    /// worker: it never ran, so it is not lost with that one.
    fn dispatch<'p>(
        &self,
        task: Dispatch,
        messages: impl Fn(&WorkerProcess, u64) -> Vec<(ToWorker, &'p [u8])>,
    ) -> Submitted {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = ResultSlot::new();
        loop {
            let worker = match self.shared.acquire() {
                Ok(w) => w,
                Err(e) => return Submitted::Ready(Err(e), Output::default()),
            };
            {
                let mut running = lock(&worker.running);
                // An idle worker that died just now: its reader is gone (or
                // going), so take another one.
                if worker.ended.load(Ordering::Acquire) {
                    continue;
                }
                *running = Some(Running {
                    id,
                    slot: slot.clone(),
                    task: task.clone(),
                });
            }
            let limit = codec::max_frame_bytes();
            let mut sent = Ok(());
            for (message, payload) in messages(&worker, id) {
                sent = match lock(&worker.input).as_mut() {
                    Some(input) => wire::write_message(input, &message, payload, limit),
                    None => Err(Error::Protocol("the worker's channel is closed".into())),
                };
                if sent.is_err() {
                    break;
                }
                BYTES_SENT.fetch_add(payload.len() as u64, Ordering::Relaxed);
            }
            match sent {
                Ok(()) => {}
                // Refused before a byte was written: the worker is fine.
                Err(e @ Error::TooLarge { .. }) => {
                    if let Some(r) = lock(&worker.running).take() {
                        self.shared.release(&worker);
                        r.slot.fill(Err(e));
                    }
                }
                // The channel broke: the worker is dead or dying. Take the
                // task back unless its reader already answered for it.
                Err(_) => {
                    let mut running = lock(&worker.running);
                    if running.as_ref().is_some_and(|r| r.id == id) {
                        running.take();
                        *lock(&worker.cached_call) = None;
                        continue;
                    }
                }
            }
            let killer = Arc::downgrade(&worker);
            slot.on_cancel(Box::new(move || {
                if let Some(w) = killer.upgrade() {
                    // Decide and kill under the `running` lock, so the reader
                    // cannot finish this task and free the worker in between.
                    let running = lock(&w.running);
                    if running.as_ref().is_some_and(|r| r.id == id) {
                        w.killed.store(true, Ordering::Release);
                        let _ = lock(&w.child).kill();
                    }
                }
            }));
            return Submitted::Running(slot);
        }
    }
}

impl Backend for ProcessPool {
    fn submit(&self, task: Task) -> Submitted {
        let label = task.label.clone();
        let dispatch = Dispatch {
            label: task.label.clone(),
            timeout: task.timeout.as_ref().map(|t| t.text.clone()),
            progress: None,
        };
        self.dispatch(dispatch, |_, id| {
            let message = ToWorker::Run {
                id,
                entry_offset: identity::offset_of(task.entry),
                label: label.clone(),
                stream: task.stream,
                settings: settings(task.capture_output, task.timeout.as_ref(), false),
            };
            vec![(message, &task.captures[..])]
        })
    }

    fn submit_chunk(&self, chunk: ChunkTask) -> Submitted {
        let label = chunk.label.clone();
        let dispatch = Dispatch {
            label: chunk.label.clone(),
            timeout: chunk.timeout.as_ref().map(|t| t.text.clone()),
            progress: chunk.progress.clone(),
        };
        self.dispatch(dispatch, |worker, id| {
            let mut messages = Vec::with_capacity(2);
            let mut cached = lock(&worker.cached_call);
            if *cached != Some(chunk.call.id) {
                messages.push((
                    ToWorker::Stash {
                        call: chunk.call.id,
                    },
                    &chunk.call.bytes[..],
                ));
                *cached = Some(chunk.call.id);
            }
            let message = ToWorker::RunChunk {
                id,
                call: chunk.call.id,
                entry_offset: identity::chunk_offset_of(chunk.entry),
                stop_at_failure: chunk.stop_at_failure,
                label: label.clone(),
                streams: chunk.streams,
                first: chunk.first as u64,
                settings: settings(
                    chunk.capture_output,
                    chunk.timeout.as_ref(),
                    chunk.progress.is_some(),
                ),
            };
            messages.push((message, &chunk.elements[..]));
            messages
        })
    }

    fn free_workers(&self) -> usize {
        let state = lock(&self.shared.state);
        self.shared.size - state.live + state.idle.len()
    }
}

impl Drop for ProcessPool {
    fn drop(&mut self) {
        let mut state = lock(&self.shared.state);
        state.closed = true;
        for w in state.idle.drain(..) {
            lock(&w.input).take();
        }
    }
}
