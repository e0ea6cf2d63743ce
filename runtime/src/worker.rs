//! The worker side of a worker process: take over before `main`, then serve.
//!
//! The leader starts a worker by running its own executable again with
//! `FUTURIZE_WORKER` set. A function in `.init_array` (run by the dynamic
//! loader before `main`, in every executable that links futurize: binaries,
//! examples, test harnesses, doctests, benches) sees the marker, serves
//! futures until the leader closes the channel, and exits; the program's own
//! `main` never runs in a worker. Users write no line for it.
//!
//! The protocol travels on private copies of stdin and stdout. Fd 0 is then
//! pointed at `/dev/null` and fd 1 at stderr, so a body that reads stdin or
//! prints cannot corrupt frames. A worker exits when its channel closes, and
//! a watchdog thread ends it if its leader dies while a body runs, so no
//! worker outlives its leader.

use crate::active::{self, ActivePlan};
use crate::each::{CaptureCache, Failure, Watch};
use crate::progress::REPORT_EVERY;
use crate::relay::Output;
use crate::relay::fds::FdCapture;
use crate::wire::{self, FromWorker, LogRecord, Outcome, TaskSettings, ToWorker};
use crate::{Error, Plan, codec, execute, identity};
use std::fs::File;
use std::io::{BufReader, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The environment marker that turns a process into a worker.
pub(crate) const WORKER_ENV: &str = "FUTURIZE_WORKER";

/// Where the leader wants a worker's output captured: two file paths,
/// stdout's and stderr's, separated by a newline.
pub(crate) const CAPTURE_ENV: &str = "FUTURIZE_WORKER_CAPTURE";

/// The paths the leader gave in [`CAPTURE_ENV`] (read at take-over), opened.
fn capture_files() -> Option<(File, File)> {
    let paths = CAPTURE_PATHS.get()?.as_ref()?;
    let (out, err) = paths.split_once('\n')?;
    let open = |p: &str| File::options().read(true).write(true).open(p);
    let files = match (open(out), open(err)) {
        (Ok(o), Ok(e)) => Some((o, e)),
        _ => None,
    };
    // Open now; the names are not needed any more (the leader removes them
    // too, should this process die first).
    let _ = std::fs::remove_file(out);
    let _ = std::fs::remove_file(err);
    files
}

static CAPTURE_PATHS: OnceLock<Option<String>> = OnceLock::new();

#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static TAKE_OVER_BEFORE_MAIN: extern "C" fn() = take_over_before_main;

extern "C" fn take_over_before_main() {
    if std::env::var_os(WORKER_ENV).is_none() {
        return;
    }
    let _ = CAPTURE_PATHS.set(std::env::var(CAPTURE_ENV).ok());
    // SAFETY: this runs before `main`, while the process has a single thread,
    // so nothing can read the environment concurrently.
    unsafe {
        std::env::remove_var(WORKER_ENV);
        std::env::remove_var(CAPTURE_ENV);
    }
    let code = match serve() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("futurize worker {}: {e}", std::process::id());
            70
        }
    };
    std::process::exit(code);
}

unsafe extern "C" {
    fn dup2(old: i32, new: i32) -> i32;
}

/// Moves the protocol off fds 0 and 1.
fn take_protocol_fds() -> std::io::Result<(File, File)> {
    let input: OwnedFd = std::io::stdin().as_fd().try_clone_to_owned()?;
    let output: OwnedFd = std::io::stdout().as_fd().try_clone_to_owned()?;
    let null = File::open("/dev/null")?;
    // SAFETY: dup2 on descriptors this process owns; fds 0 and 1 stay open
    // (now /dev/null and stderr) for anything in the process that uses them.
    let (a, b) = unsafe { (dup2(null.as_raw_fd(), 0), dup2(2, 1)) };
    if a < 0 || b < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((File::from(input), File::from(output)))
}

fn watch_parent() {
    let parent = std::os::unix::process::parent_id();
    let _ = std::thread::Builder::new()
        .name("futurize-watchdog".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(250));
                if std::os::unix::process::parent_id() != parent {
                    std::process::exit(71);
                }
            }
        });
}

fn serve() -> Result<(), Error> {
    let (input, output) =
        take_protocol_fds().map_err(|e| Error::Protocol(format!("worker fds: {e}")))?;
    *lock(&CHANNEL) = Some(output);
    watch_parent();
    let limit = codec::max_frame_bytes();
    let mut input = BufReader::new(input);
    let nested = match wire::read_message::<_, ToWorker>(&mut input, limit)? {
        Some((
            ToWorker::Hello {
                version,
                build_id,
                nested_plan,
            },
            _,
        )) => {
            let refusal = if version != wire::PROTOCOL_VERSION {
                Some(format!(
                    "the leader speaks protocol version {version}, this worker {}",
                    wire::PROTOCOL_VERSION
                ))
            } else if build_id != identity::build_id() {
                Some(format!(
                    "the leader's executable (build {}) differs from this worker's (build {})",
                    hex(&build_id),
                    hex(identity::build_id())
                ))
            } else {
                None
            };
            if let Some(reason) = refusal {
                send(
                    &FromWorker::Refused {
                        reason: reason.clone(),
                    },
                    &[],
                )?;
                return Err(Error::Protocol(reason));
            }
            Plan::parse_from(&nested_plan, "the plan the leader passed on")?
        }
        Some((other, _)) => {
            return Err(Error::Protocol(format!(
                "expected a handshake, got {other:?}"
            )));
        }
        None => return Ok(()),
    };
    let ready = FromWorker::Ready {
        version: wire::PROTOCOL_VERSION,
        build_id: identity::build_id().to_vec(),
        pid: std::process::id(),
    };
    // Open the leader's capture files before answering: the leader removes
    // their names once it has the answer.
    let files = capture_files();
    send(&ready, &[])?;
    install_logger();
    let nested = ActivePlan::new(nested);
    let mut cache: Option<CaptureCache> = None;
    // The leader's files, else memfds; without either, tasks run uncaptured.
    let mut fds = FdCapture::new(files)
        .or_else(|_| FdCapture::new(None))
        .inspect_err(|e| {
            eprintln!(
                "futurize worker {}: cannot capture output: {e}",
                std::process::id()
            );
        })
        .ok();
    while let Some((message, payload)) = wire::read_message::<_, ToWorker>(&mut input, limit)? {
        let (id, (result, output)) = match message {
            ToWorker::Run {
                id,
                entry_offset,
                stream,
                settings,
                ..
            } => {
                // SAFETY: the handshake established that the leader runs this
                // very executable (same build id), and offsets come from
                // `identity::offset_of` in the leader.
                let entry = unsafe { identity::entry_at(entry_offset) };
                begin_task(id, 0, settings);
                let run = || {
                    element_started(None);
                    let (result, _) = execute::run(entry, &payload, &nested, stream, None, None);
                    element_finished();
                    result
                };
                (id, captured(&mut fds, settings.capture_output, run))
            }
            ToWorker::Stash { call } => {
                cache = Some(CaptureCache {
                    call,
                    bytes: payload,
                    decoded: None,
                });
                continue;
            }
            ToWorker::RunChunk {
                id,
                call,
                entry_offset,
                stop_at_failure,
                streams,
                first,
                settings,
                ..
            } => {
                // SAFETY: as for `Run`, with an offset from `chunk_offset_of`.
                let entry = unsafe { identity::chunk_entry_at(entry_offset) };
                begin_task(id, first, settings);
                let result = match cache.as_mut().filter(|c| c.call == call) {
                    None => (
                        Err(Error::Protocol(format!(
                            "the captures of call {call} never reached this worker"
                        ))),
                        Output::default(),
                    ),
                    Some(c) => captured(&mut fds, settings.capture_output, || {
                        active::within(&nested, || {
                            execute::catch(|| entry(c, &payload, stop_at_failure, streams))
                                .and_then(|r| r)
                        })
                    }),
                };
                (id, result)
            }
            ToWorker::Shutdown => break,
            ToWorker::Hello { .. } => {
                return Err(Error::Protocol("a second handshake".into()));
            }
        };
        let (outcome, value) = match result {
            Ok(value) => (Outcome::Value, value),
            Err(Error::Panicked {
                message,
                location,
                backtrace,
                ..
            }) => (
                Outcome::Panicked {
                    message,
                    location,
                    backtrace,
                },
                Vec::new(),
            ),
            Err(e) => (
                Outcome::Failed {
                    message: e.to_string(),
                },
                Vec::new(),
            ),
        };
        end_task();
        let done = FromWorker::Done {
            id,
            outcome,
            output,
        };
        match send(&done, &value) {
            // Value and output together exceed a frame: say so, and serve on.
            Err(Error::TooLarge { size, limit, .. }) => send(
                &FromWorker::Done {
                    id,
                    outcome: Outcome::TooLarge { size, limit },
                    output: Output::default(),
                },
                &[],
            )?,
            other => other?,
        }
    }
    Ok(())
}

/// Hex text of a build id, for messages.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------
// The running task, as the logger, the progress reports and the timer see it.
// A worker runs one task at a time, so these are process-wide.

/// The protocol's writing end, shared by the serve loop, the logger, the
/// progress reports and the timer.
static CHANNEL: Mutex<Option<File>> = Mutex::new(None);

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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64 + 1
}

/// Writes one message to the leader.
fn send(message: &FromWorker, payload: &[u8]) -> Result<(), Error> {
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

fn begin_task(id: u64, first: u64, settings: TaskSettings) {
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

fn end_task() {
    report_progress(true);
    ELEMENT.store(NO_ELEMENT, Ordering::Relaxed);
    STARTED_MS.store(0, Ordering::Relaxed);
    TIMEOUT_MS.store(0, Ordering::Relaxed);
    PROGRESS_ON.store(false, Ordering::Relaxed);
}

/// The element the running task is at, for a chunk.
fn current_element() -> Option<u64> {
    let index = ELEMENT.load(Ordering::Acquire);
    (index != NO_ELEMENT).then_some(index)
}

fn element_started(position: Option<usize>) {
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

fn element_finished() {
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
pub(crate) fn progress_step(message: Option<String>) {
    if !PROGRESS_ON.load(Ordering::Relaxed) {
        return;
    }
    PENDING_STEPS.fetch_add(1, Ordering::Relaxed);
    if message.is_some() {
        *lock(&PENDING_MESSAGE) = message;
    }
    report_progress(false);
}

/// The elements of a chunk on a worker: their index for logs and the timer,
/// and progress reports.
pub(crate) struct WorkerWatch;

impl Watch for WorkerWatch {
    fn started(&mut self, position: usize) {
        element_started(Some(position));
    }
    fn finished(&mut self, _: usize) -> Option<Failure> {
        element_finished();
        None
    }
}

/// Runs a task with its output captured at the fds; `keep` false silences
/// it (`stdout = false`).
fn captured<R>(fds: &mut Option<FdCapture>, keep: bool, f: impl FnOnce() -> R) -> (R, Output) {
    match fds.as_mut() {
        Some(fds) => fds.run(keep, f),
        None => (f(), Output::default()),
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
                    unsafe { _exit(72) };
                }
            });
    });
}

unsafe extern "C" {
    fn _exit(code: i32) -> !;
}

/// The log level that travels as `level` (0 = off, 1 = error … 5 = trace).
pub(crate) fn level_filter(level: u8) -> log::LevelFilter {
    log::LevelFilter::iter()
        .nth(usize::from(level))
        .unwrap_or(log::LevelFilter::Trace)
}

/// The number a log level travels as: `LevelFilter`'s own order.
pub(crate) fn level_number(level: log::LevelFilter) -> u8 {
    level as u8
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

fn install_logger() {
    let _ = log::set_boxed_logger(Box::new(ForwardLogger));
    log::set_max_level(log::LevelFilter::Off);
}
