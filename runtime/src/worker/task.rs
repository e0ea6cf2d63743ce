//! The task a worker process is running, as its logger, its progress
//! reports and its timer see it: one [`RunningTask`] value. A worker runs
//! one task at a time, so this value is process-wide.
//!
//! Invariant: every message to the leader goes through the one channel lock
//! ([`send`]), so frames never interleave; the timer decides a time-out under
//! that lock, so a chunk's answer is never followed by a time-out of its
//! element.

use crate::Error;
use crate::body::chunk::ElementEvents;
use crate::protocol::wire::{self, FromWorker, LogRecord};
use crate::protocol::{HEARTBEAT_EVERY, REPORT_EVERY, codec, level_filter, level_number};
use crate::settings::Settings;
use crate::sync::lock;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The protocol's writing end, shared by the serve loop, the logger, the
/// progress reports and the timer: the worker's stdout, a Slurm job's answer
/// file, or its host's connection written in pieces.
static CHANNEL: Mutex<Option<Box<dyn Write + Send>>> = Mutex::new(None);

/// Makes `output` the channel to the leader.
pub(super) fn open_channel(output: Box<dyn Write + Send>) {
    *lock(&CHANNEL) = Some(output);
}

/// No element: the task is a future.
const NO_ELEMENT: u64 = u64::MAX;

/// In [`RunningTask::element`]: the element is the chunk's first plus the
/// chunk loop's running position (`body::chunk::running_position`).
const BY_POSITION: u64 = u64::MAX - 1;

/// The task this worker is running, as the logger, the progress reports and
/// the timer (other threads) see it. One value; its fields are atomics so
/// that the per-element updates cost a store each.
struct RunningTask {
    /// The leader's id of the task.
    id: AtomicU64,
    /// The element index of a chunk's first element (0 for a future).
    first: AtomicU64,
    /// The element running now ([`NO_ELEMENT`] for a future, or between).
    element: AtomicU64,
    /// `progress = true`: report finished elements and steps.
    progress: AtomicBool,
    pending_elements: AtomicU64,
    pending_steps: AtomicU64,
    pending_message: Mutex<Option<String>>,
    last_report: Mutex<Option<Instant>>,
    /// The time limit of one element in milliseconds; 0 when there is none.
    timeout_ms: AtomicU64,
    /// When the running element started, in milliseconds since [`epoch`]
    /// plus one; 0 while no element runs.
    started_ms: AtomicU64,
    /// Counts started elements, so the timer can tell one element from the
    /// next.
    serial: AtomicU64,
}

static TASK: RunningTask = RunningTask {
    id: AtomicU64::new(0),
    first: AtomicU64::new(0),
    element: AtomicU64::new(NO_ELEMENT),
    progress: AtomicBool::new(false),
    pending_elements: AtomicU64::new(0),
    pending_steps: AtomicU64::new(0),
    pending_message: Mutex::new(None),
    last_report: Mutex::new(None),
    timeout_ms: AtomicU64::new(0),
    started_ms: AtomicU64::new(0),
    serial: AtomicU64::new(0),
};

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64 + 1
}

/// Writes one message to the leader.
pub(super) fn send(message: &FromWorker, payload: &[u8]) -> Result<(), Error> {
    write_to(&mut lock(&CHANNEL), message, payload)
}

/// Writes one message on a channel whose lock the caller holds.
fn write_to(
    channel: &mut Option<Box<dyn Write + Send>>,
    message: &FromWorker,
    payload: &[u8],
) -> Result<(), Error> {
    let output = channel
        .as_mut()
        .ok_or_else(|| Error::Protocol("the channel to the leader is not open".into()))?;
    wire::write_message(output, message, payload, codec::max_frame_bytes())?;
    output
        .flush()
        .map_err(|e| Error::Protocol(format!("the channel to the leader closed: {e}")))
}

/// Task `id` starts, with `settings`; `first` is a chunk's first element.
/// With `timed`, an element that runs past its `timeout` ends this process
/// (a Slurm job leaves its time limit to Slurm).
pub(super) fn begin_task(id: u64, first: u64, settings: &Settings, timed: bool) {
    let t = &TASK;
    t.id.store(id, Ordering::Relaxed);
    t.first.store(first, Ordering::Relaxed);
    t.progress.store(settings.progress, Ordering::Relaxed);
    *lock(&t.last_report) = Some(Instant::now());
    log::set_max_level(level_filter(settings.log_level));
    let timeout = match &settings.timeout {
        Some(limit) if timed => limit.millis(),
        _ => 0,
    };
    t.timeout_ms.store(timeout, Ordering::Relaxed);
    if timeout > 0 {
        start_timer();
    }
}

pub(super) fn end_task() {
    report_progress(true);
    let t = &TASK;
    t.element.store(NO_ELEMENT, Ordering::Relaxed);
    t.started_ms.store(0, Ordering::Relaxed);
    t.timeout_ms.store(0, Ordering::Relaxed);
    t.progress.store(false, Ordering::Relaxed);
    // Between tasks no body runs, so no record is wanted.
    log::set_max_level(log::LevelFilter::Off);
}

/// The element the running task is at, for a chunk.
fn current_element() -> Option<u64> {
    match TASK.element.load(Ordering::Acquire) {
        NO_ELEMENT => None,
        BY_POSITION => {
            Some(TASK.first.load(Ordering::Relaxed) + crate::body::chunk::running_position() as u64)
        }
        index => Some(index),
    }
}

pub(super) fn element_started(position: Option<usize>) {
    let t = &TASK;
    let index = position.map_or(NO_ELEMENT, |p| t.first.load(Ordering::Relaxed) + p as u64);
    let timed = t.timeout_ms.load(Ordering::Relaxed) > 0;
    if timed {
        t.serial.fetch_add(1, Ordering::AcqRel);
    }
    t.element.store(index, Ordering::Release);
    if timed {
        t.started_ms.store(now_ms(), Ordering::Release);
    }
}

pub(super) fn element_finished() {
    let t = &TASK;
    // Only a timed task has a start to clear (a swap is a locked instruction;
    // untimed elements skip it).
    if t.timeout_ms.load(Ordering::Relaxed) > 0 && t.started_ms.swap(0, Ordering::AcqRel) != 0 {
        t.serial.fetch_add(1, Ordering::AcqRel);
    }
    if t.progress.load(Ordering::Relaxed) {
        t.pending_elements.fetch_add(1, Ordering::Relaxed);
        report_progress(false);
    }
}

/// Sends what progress is pending: at once with `now`, else when the last
/// report is [`REPORT_EVERY`] old.
fn report_progress(now: bool) {
    let t = &TASK;
    {
        let mut last = lock(&t.last_report);
        if !now && last.is_some_and(|t| t.elapsed() < REPORT_EVERY) {
            return;
        }
        *last = Some(Instant::now());
    }
    let elements = t.pending_elements.swap(0, Ordering::Relaxed);
    let steps = t.pending_steps.swap(0, Ordering::Relaxed);
    let message = lock(&t.pending_message).take();
    if elements == 0 && steps == 0 && message.is_none() {
        return;
    }
    let _ = send(
        &FromWorker::Progress {
            id: t.id.load(Ordering::Relaxed),
            elements,
            steps,
            message,
        },
        &[],
    );
}

/// `progress!()` in a body running on this worker.
pub(super) fn progress_step(message: Option<String>) {
    let t = &TASK;
    if !t.progress.load(Ordering::Relaxed) {
        return;
    }
    t.pending_steps.fetch_add(1, Ordering::Relaxed);
    if message.is_some() {
        *lock(&t.pending_message) = message;
    }
    report_progress(false);
}

/// Starts the thread that tells the leader, every [`HEARTBEAT_EVERY`], that
/// this process is alive, idle or busy (a body never delays it: it takes only
/// the channel lock). A stopped or frozen process sends nothing, and the
/// leader notices.
pub(super) fn start_heartbeat() {
    let _ = std::thread::Builder::new()
        .name("futurize-heartbeat".into())
        .spawn(|| {
            loop {
                std::thread::sleep(HEARTBEAT_EVERY);
                if send(&FromWorker::Alive, &[]).is_err() {
                    return;
                }
            }
        });
}

/// The elements of a chunk on a worker: their index for logs and the timer,
/// and progress reports.
pub(super) struct WorkerEvents;

impl ElementEvents for WorkerEvents {
    /// Only a timed task or one with a bar needs every element's events;
    /// otherwise the element (for log records) is read from the chunk's
    /// running position.
    fn chunk_starts(&mut self) -> bool {
        let t = &TASK;
        let every = t.timeout_ms.load(Ordering::Relaxed) > 0 || t.progress.load(Ordering::Relaxed);
        if !every {
            t.element.store(BY_POSITION, Ordering::Release);
        }
        every
    }
    fn started(&mut self, position: usize) {
        element_started(Some(position));
    }
    fn finished(&mut self, _: usize) {
        element_finished();
    }
}

/// Starts, once, the thread that ends this worker when an element runs past
/// its time limit: the body cannot be interrupted, so the process goes, after
/// telling the leader which element it was.
fn start_timer() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let _ = std::thread::Builder::new()
            .name("futurize-timer".into())
            .spawn(|| {
                let t = &TASK;
                loop {
                    let limit = t.timeout_ms.load(Ordering::Relaxed);
                    let tick = if limit == 0 {
                        200
                    } else {
                        (limit / 20).clamp(2, 200)
                    };
                    std::thread::sleep(Duration::from_millis(tick));
                    let serial = t.serial.load(Ordering::Acquire);
                    let started = t.started_ms.load(Ordering::Relaxed);
                    if limit == 0 || started == 0 || now_ms().saturating_sub(started) <= limit {
                        continue;
                    }
                    // Decide again under the channel's lock: the element may
                    // have ended meanwhile, and its chunk's answer must not
                    // be followed by a time-out.
                    let mut channel = lock(&CHANNEL);
                    // The serial changes when an element ends and when the
                    // next starts: read it last, so a change in between is seen.
                    let index = current_element();
                    let still_running = t.started_ms.load(Ordering::Acquire) != 0;
                    if t.serial.load(Ordering::Acquire) != serial || !still_running {
                        continue;
                    }
                    let message = FromWorker::TimedOut {
                        id: t.id.load(Ordering::Relaxed),
                        index,
                    };
                    let _ = write_to(&mut channel, &message, &[]);
                    // SAFETY: ends the process at once, without running
                    // destructors or exit handlers that could wait on locks
                    // the stuck body holds.
                    unsafe { libc::_exit(72) };
                }
            });
    });
}

/// Sends the `log` records of bodies to the leader, tagged with the element.
struct ForwardLogger;

impl log::Log for ForwardLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let record = LogRecord {
            level: level_number(record.level().to_level_filter()),
            target: record.target().to_string(),
            message: record.args().to_string(),
            module_path: record.module_path().map(str::to_string),
            file: record.file().map(str::to_string),
            line: record.line(),
            index: current_element(),
        };
        let _ = send(
            &FromWorker::Log {
                id: TASK.id.load(Ordering::Relaxed),
                record,
            },
            &[],
        );
    }

    fn flush(&self) {}
}

pub(super) fn install_logger() {
    let _ = log::set_boxed_logger(Box::new(ForwardLogger));
    log::set_max_level(log::LevelFilter::Off);
}
