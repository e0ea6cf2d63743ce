//! The task a worker process is running, as its logger, its progress
//! reports and its timer see it. A worker runs one task at a time, so this
//! state is process-wide.
//!
//! Invariant: every message to the leader goes through the one channel lock
//! ([`send`]), so frames never interleave; the timer decides a time-out under
//! that lock, so a chunk's answer is never followed by a time-out of its
//! element.

use crate::Error;
use crate::body::chunk::ElementEvents;
use crate::protocol::wire::{self, FromWorker, LogRecord, TaskSettings};
use crate::protocol::{HEARTBEAT_EVERY, REPORT_EVERY, codec, level_filter, level_number};
use crate::sync::lock;
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The protocol's writing end, shared by the serve loop, the logger, the
/// progress reports and the timer.
static CHANNEL: Mutex<Option<File>> = Mutex::new(None);

/// Makes `output` the channel to the leader.
pub(super) fn open_channel(output: File) {
    *lock(&CHANNEL) = Some(output);
}

/// No element: the task is a future.
const NO_ELEMENT: u64 = u64::MAX;

static TASK_ID: AtomicU64 = AtomicU64::new(0);
static FIRST_ELEMENT: AtomicU64 = AtomicU64::new(0);
static ELEMENT: AtomicU64 = AtomicU64::new(NO_ELEMENT);
static PROGRESS_ON: AtomicBool = AtomicBool::new(false);
static PENDING_ELEMENTS: AtomicU64 = AtomicU64::new(0);
static PENDING_STEPS: AtomicU64 = AtomicU64::new(0);
static PENDING_MESSAGE: Mutex<Option<String>> = Mutex::new(None);
static LAST_REPORT: Mutex<Option<Instant>> = Mutex::new(None);
/// The time limit of one element in milliseconds; 0 when there is none.
static TIMEOUT_MS: AtomicU64 = AtomicU64::new(0);
/// When the running element started, in milliseconds since [`epoch`] plus
/// one; 0 while no element runs.
static STARTED_MS: AtomicU64 = AtomicU64::new(0);
/// Counts started elements, so the timer can tell one element from the next.
static ELEMENT_SERIAL: AtomicU64 = AtomicU64::new(0);

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
fn write_to(channel: &mut Option<File>, message: &FromWorker, payload: &[u8]) -> Result<(), Error> {
    let output = channel
        .as_mut()
        .ok_or_else(|| Error::Protocol("the channel to the leader is not open".into()))?;
    wire::write_message(output, message, payload, codec::max_frame_bytes())?;
    output
        .flush()
        .map_err(|e| Error::Protocol(format!("the channel to the leader closed: {e}")))
}

pub(super) fn begin_task(id: u64, first: u64, settings: TaskSettings) {
    TASK_ID.store(id, Ordering::Relaxed);
    FIRST_ELEMENT.store(first, Ordering::Relaxed);
    PROGRESS_ON.store(settings.progress, Ordering::Relaxed);
    *lock(&LAST_REPORT) = Some(Instant::now());
    log::set_max_level(level_filter(settings.log_level));
    let timeout = settings.timeout_ms.map_or(0, |t| t.max(1));
    TIMEOUT_MS.store(timeout, Ordering::Relaxed);
    if timeout > 0 {
        start_timer();
    }
}

pub(super) fn end_task() {
    report_progress(true);
    ELEMENT.store(NO_ELEMENT, Ordering::Relaxed);
    STARTED_MS.store(0, Ordering::Relaxed);
    TIMEOUT_MS.store(0, Ordering::Relaxed);
    PROGRESS_ON.store(false, Ordering::Relaxed);
    // Between tasks no body runs, so no record is wanted.
    log::set_max_level(log::LevelFilter::Off);
}

/// The element the running task is at, for a chunk.
fn current_element() -> Option<u64> {
    let index = ELEMENT.load(Ordering::Acquire);
    (index != NO_ELEMENT).then_some(index)
}

pub(super) fn element_started(position: Option<usize>) {
    let index = position.map_or(NO_ELEMENT, |p| {
        FIRST_ELEMENT.load(Ordering::Relaxed) + p as u64
    });
    let timed = TIMEOUT_MS.load(Ordering::Relaxed) > 0;
    if timed {
        ELEMENT_SERIAL.fetch_add(1, Ordering::AcqRel);
    }
    ELEMENT.store(index, Ordering::Release);
    if timed {
        STARTED_MS.store(now_ms(), Ordering::Release);
    }
}

pub(super) fn element_finished() {
    // Only a timed task has a start to clear (a swap is a locked instruction;
    // untimed elements skip it).
    if TIMEOUT_MS.load(Ordering::Relaxed) > 0 && STARTED_MS.swap(0, Ordering::AcqRel) != 0 {
        ELEMENT_SERIAL.fetch_add(1, Ordering::AcqRel);
    }
    if PROGRESS_ON.load(Ordering::Relaxed) {
        PENDING_ELEMENTS.fetch_add(1, Ordering::Relaxed);
        report_progress(false);
    }
}

/// Sends what progress is pending: at once with `now`, else when the last
/// report is [`REPORT_EVERY`] old.
fn report_progress(now: bool) {
    {
        let mut last = lock(&LAST_REPORT);
        if !now && last.is_some_and(|t| t.elapsed() < REPORT_EVERY) {
            return;
        }
        *last = Some(Instant::now());
    }
    let elements = PENDING_ELEMENTS.swap(0, Ordering::Relaxed);
    let steps = PENDING_STEPS.swap(0, Ordering::Relaxed);
    let message = lock(&PENDING_MESSAGE).take();
    if elements == 0 && steps == 0 && message.is_none() {
        return;
    }
    let _ = send(
        &FromWorker::Progress {
            id: TASK_ID.load(Ordering::Relaxed),
            elements,
            steps,
            message,
        },
        &[],
    );
}

/// `progress!()` in a body running on this worker.
pub(super) fn progress_step(message: Option<String>) {
    if !PROGRESS_ON.load(Ordering::Relaxed) {
        return;
    }
    PENDING_STEPS.fetch_add(1, Ordering::Relaxed);
    if message.is_some() {
        *lock(&PENDING_MESSAGE) = message;
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
                loop {
                    let limit = TIMEOUT_MS.load(Ordering::Relaxed);
                    let tick = if limit == 0 {
                        200
                    } else {
                        (limit / 20).clamp(2, 200)
                    };
                    std::thread::sleep(Duration::from_millis(tick));
                    let serial = ELEMENT_SERIAL.load(Ordering::Acquire);
                    let started = STARTED_MS.load(Ordering::Relaxed);
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
                    let still_running = STARTED_MS.load(Ordering::Acquire) != 0;
                    if ELEMENT_SERIAL.load(Ordering::Acquire) != serial || !still_running {
                        continue;
                    }
                    let message = FromWorker::TimedOut {
                        id: TASK_ID.load(Ordering::Relaxed),
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
                id: TASK_ID.load(Ordering::Relaxed),
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
