//! The worker side of a worker process: serve the leader's tasks over the
//! process's stdin and stdout until the leader closes the channel.
//!
//! The leader starts a worker by running its own executable again with
//! `FUTURIZE_WORKER` set; a function run before `main` (`startup`) hands the
//! process to [`serve`], so the program's own `main` never runs in a worker.
//! The protocol, its messages and their order are described in this
//! folder's README.md ("The worker protocol"; docs/design.md summarizes it).
//!
//! The protocol travels on private copies of stdin and stdout. Fd 0 is then
//! pointed at `/dev/null` and fd 1 at stderr, so a body that reads stdin or
//! prints cannot corrupt frames. A worker exits when its channel closes, and
//! a watchdog thread ends it if its leader dies while a body runs, so no
//! worker outlives its leader.
//!
//! Invariant: this side imports nothing of the leader side (plans in force,
//! backends, the map engine): only the shared [`protocol`](crate::protocol),
//! the code that runs bodies ([`body`](crate::body)) and output capture. The
//! plan its bodies see comes in as a [`NestedPlan`] made by whoever started
//! the worker.

mod fds;
mod handshake;
mod job;
mod memory;
mod task;

pub(crate) use handshake::read_as_worker;
pub(crate) use job::{run_job, take_job_environment};

use handshake::Refusal;

use crate::body::chunk::{CaptureBytes, CaptureCache, chunk_entry_at};
use crate::body::{self, NestedPlan, capture::entry_at};
use crate::protocol::agent::{CONNECTION_ENV, check_captures_file};
use crate::protocol::shared_connection::PieceWriter;
use crate::protocol::shared_memory::{OUTBOX_NAME, PeerPages, SHARED_FROM, SharedPages};
use crate::protocol::wire::{self, ChunkOf, FromWorker, InboxPlace, Outcome, ToWorker};
use crate::protocol::{self, CAPTURE_ENV, Output, WORKER_ENV, codec, identity};
use crate::settings::Settings;
use crate::{Error, Plan};
use fds::FdCapture;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::sync::OnceLock;
use std::time::Duration;

/// The paths the leader gave in [`CAPTURE_ENV`], read at take-over.
static CAPTURE_PATHS: OnceLock<Option<String>> = OnceLock::new();

/// True when this process was started as a worker. Takes the worker's
/// variables out of the environment, so that programs a body starts do not
/// see them.
///
/// # Safety
/// Must run while the process has a single thread (before `main`): it
/// changes the environment.
pub(crate) unsafe fn take_worker_environment() -> bool {
    if std::env::var_os(WORKER_ENV).is_none() {
        return false;
    }
    let _ = CAPTURE_PATHS.set(std::env::var(CAPTURE_ENV).ok());
    let _ = CONNECTION.set(std::env::var(CONNECTION_ENV).ok().and_then(|v| {
        let (fd, worker) = v.split_once(' ')?;
        let fd: i32 = fd.parse().ok().filter(|&fd| fd > 2)?;
        // Programs a body starts must not write into the connection.
        // SAFETY: fcntl on a descriptor number; a closed one fails harmlessly.
        let kept = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == 0;
        Some((fd, worker.parse().ok()?)).filter(|_| kept)
    }));
    // SAFETY: by the caller's promise no other thread reads the environment.
    unsafe {
        std::env::remove_var(WORKER_ENV);
        std::env::remove_var(CAPTURE_ENV);
        std::env::remove_var(CONNECTION_ENV);
    }
    true
}

/// The host's connection this worker writes its frames into itself, when
/// its agent shared it ([`CONNECTION_ENV`]): its descriptor and the
/// worker's number.
static CONNECTION: OnceLock<Option<(i32, u32)>> = OnceLock::new();

/// Where this worker's frames go: its host's connection in pieces when the
/// agent shared it, else its own stdout.
fn channel_to_leader(stdout: File) -> Result<Box<dyn Write + Send>, Error> {
    let Some((fd, worker)) = CONNECTION.get().copied().flatten() else {
        return Ok(Box::new(stdout));
    };
    // SAFETY: the agent passed this descriptor for this process to own; it
    // was taken once, at take-over, and nothing else of this process uses it.
    let connection = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // The stdout pipe stays open, unused: its end tells the agent that
    // this worker has ended.
    std::mem::forget(stdout);
    Ok(Box::new(PieceWriter::new(connection, worker)?))
}

/// The leader's capture files, opened: regular files of this user's,
/// reached without following a link. Once both are open their names go:
/// the leader removes them too once this worker has answered the
/// handshake, but a host agent never sees that answer (it goes to the
/// leader), and its workers left their names in the host's temporary
/// directory.
fn capture_files() -> Option<(File, File)> {
    let paths = CAPTURE_PATHS.get()?.as_ref()?;
    let (out, err) = paths.split_once('\n')?;
    let files = (open_capture(out)?, open_capture(err)?);
    // Files of this user's that this worker just opened (a sticky /tmp lets
    // no one else rename them meanwhile).
    let _ = std::fs::remove_file(out);
    let _ = std::fs::remove_file(err);
    Some(files)
}

fn open_capture(path: &str) -> Option<File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let file = File::options()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    (meta.is_file() && meta.uid() == crate::protocol::job::own_uid()).then_some(file)
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

/// Serves the leader until it closes the channel. `nested` makes the handle
/// through which bodies see the plan the leader passed on.
pub(crate) fn serve(nested: fn(Plan) -> NestedPlan) -> Result<(), Error> {
    let (input, output) =
        protocol::take_stdio().map_err(|e| Error::Protocol(format!("worker fds: {e}")))?;
    watch_parent();
    // The leader's capture files, opened before the answer to the handshake:
    // the leader removes their names once it has the answer.
    let mode = ServeMode {
        heartbeat: true,
        timed: true,
    };
    serve_on(
        input,
        channel_to_leader(output)?,
        nested,
        capture_files,
        mode,
    )
}

/// How a serve loop runs its tasks besides what the leader says: a worker
/// process beats its heart and keeps time limits; a Slurm job does neither
/// (nobody listens to its files while it runs, and Slurm keeps its limit).
#[derive(Clone, Copy)]
pub(crate) struct ServeMode {
    /// Tell the leader every few seconds that this process is alive.
    pub(crate) heartbeat: bool,
    /// End the process when an element runs past its `timeout`.
    pub(crate) timed: bool,
}

/// Serves the tasks read from `input`, answering on `output`, until the
/// input ends: the loop of a worker process, and of a Slurm job, whose
/// input and output are files.
pub(crate) fn serve_on(
    input: impl Read,
    output: Box<dyn Write + Send>,
    nested: fn(Plan) -> NestedPlan,
    capture_files: fn() -> Option<(File, File)>,
    mode: ServeMode,
) -> Result<(), Error> {
    task::open_channel(output);
    memory::worker_starts();
    let limit = codec::max_frame_bytes();
    let mut input = BufReader::new(input);
    let plan = match handshake::read_hello(&mut input, limit) {
        Ok(Some(plan)) => plan,
        Ok(None) => return Ok(()),
        Err(Refusal::Tell(reason)) => {
            task::send(
                &FromWorker::Refused {
                    reason: reason.clone(),
                },
                &[],
            )?;
            return Err(Error::Protocol(reason));
        }
        Err(Refusal::Broken(e)) => return Err(e),
    };
    let ready = FromWorker::Ready {
        version: wire::PROTOCOL_VERSION,
        build_id: identity::build_id().to_vec(),
        pid: std::process::id(),
    };
    let files = capture_files();
    task::send(&ready, &[])?;
    if mode.heartbeat {
        task::start_heartbeat();
    }
    task::install_logger();
    body::set_worker_step_hook(task::progress_step);
    let mut server = Server::new(nested(plan), files, mode);
    while let Some((message, piped)) = wire::read_message::<_, ToWorker>(&mut input, limit)? {
        if !server.handle(message, piped)? {
            break;
        }
    }
    Ok(())
}

/// A serve loop's state between messages.
struct Server {
    /// The plan the bodies see.
    nested: NestedPlan,
    /// The captures of the `foreach!` call whose chunks run here.
    captures: Option<CaptureCache>,
    /// The leader's shared memory, and where the next payload waits in it.
    inbox: Option<PeerPages>,
    in_inbox: Option<InboxPlace>,
    /// Whether large answers may go through this worker's own shared
    /// memory (the leader said so: it runs on this machine), and that memory.
    use_outbox: bool,
    outbox: Option<SharedPages>,
    /// The leader's capture files, else memfds; without either, tasks run
    /// uncaptured.
    fds: Option<FdCapture>,
    mode: ServeMode,
}

impl Server {
    fn new(nested: NestedPlan, files: Option<(File, File)>, mode: ServeMode) -> Server {
        let fds = FdCapture::new(files)
            .or_else(|_| FdCapture::new(None))
            .inspect_err(|e| {
                eprintln!(
                    "futurize worker {}: cannot capture output: {e}",
                    std::process::id()
                );
            })
            .ok();
        Server {
            nested,
            captures: None,
            inbox: None,
            in_inbox: None,
            use_outbox: false,
            outbox: None,
            fds,
            mode,
        }
    }

    /// Handles one message with its payload (`piped`, empty when the
    /// payload waits in the inbox); false when the leader said to end.
    fn handle(&mut self, message: ToWorker, piped: Vec<u8>) -> Result<bool, Error> {
        match message {
            ToWorker::InInbox(next) => self.in_inbox = Some(next),
            ToWorker::UseOutbox => self.use_outbox = true,
            ToWorker::KeepCaptures { call } => self.keep_captures(call, piped),
            ToWorker::Run {
                id,
                entry_offset,
                chunk,
                settings,
            } => {
                let (result, output) = self.run(id, entry_offset, chunk, &settings, &piped);
                self.answer(id, result, output)?;
            }
            ToWorker::Shutdown => return Ok(false),
            ToWorker::Hello { .. } => {
                return Err(Error::Protocol("a second handshake".into()));
            }
        }
        Ok(true)
    }

    /// Keeps the payload as call `call`'s captures. Copied out of a
    /// leader's inbox at once (the leader may use the inbox again for the
    /// call's next chunk); a host agent's shared copy, which the agent never
    /// writes again, is mapped until the first chunk decodes it.
    fn keep_captures(&mut self, call: u64, piped: Vec<u8>) {
        let bytes = match self.in_inbox.take() {
            None => Ok(CaptureBytes::Owned(piped)),
            Some(at) => self.shared_captures(call, at),
        };
        // Large captures keep the pages the call's chunks free (`memory`).
        memory::task_starts(bytes.as_ref().map_or(0, CaptureBytes::len));
        self.captures = match bytes {
            Ok(bytes) => Some(CaptureCache {
                call,
                bytes,
                decoded: None,
            }),
            Err(e) => {
                eprintln!("futurize worker {}: {e}", std::process::id());
                None
            }
        };
    }

    /// Captures in shared memory: the leader's inbox (copied out) or the
    /// agent's stash of call `call` (mapped on their own), whose name is
    /// checked first.
    fn shared_captures(&mut self, call: u64, at: InboxPlace) -> Result<CaptureBytes, Error> {
        let stash = match &at.open {
            Some(f) => check_captures_file(&format!("/proc/{}/fd/{}", f.pid, f.fd), call)?,
            None => false,
        };
        if !stash {
            return PeerPages::payload(&mut self.inbox, &at, false)
                .map(|b| CaptureBytes::Owned(copied(b)));
        }
        let mut pages = None;
        PeerPages::payload(&mut pages, &at, false)?;
        Ok(CaptureBytes::Mapped {
            pages,
            place: InboxPlace { open: None, ..at },
        })
    }

    /// Runs task `id`: a future, or a chunk of a call whose captures this
    /// worker keeps; its result and what it printed.
    fn run(
        &mut self,
        id: u64,
        entry_offset: i64,
        chunk: Option<ChunkOf>,
        settings: &Settings,
        piped: &[u8],
    ) -> (Result<Vec<u8>, Error>, Output) {
        // A new task: the leader took the last answer, so it has opened the
        // outbox if it was offered.
        if let Some(outbox) = self.outbox.as_mut() {
            outbox.answered();
        }
        let payload: Result<&[u8], Error> = match self.in_inbox.take() {
            Some(at) => PeerPages::payload(&mut self.inbox, &at, false),
            None => Ok(piped),
        };
        memory::task_starts(payload.as_ref().map_or(0, |p| p.len()));
        task::begin_task(id, chunk.map_or(0, |c| c.first), settings, self.mode.timed);
        let (nested, keep) = (&self.nested, settings.stdout);
        let ran = match chunk {
            None => {
                // SAFETY: the handshake established that the leader runs this
                // very executable (same build id), and offsets come from
                // `entry_offset` in the leader.
                let entry = unsafe { entry_at(entry_offset) };
                captured(&mut self.fds, keep, || {
                    let payload = payload?;
                    task::element_started(None);
                    let (result, _) = body::run(entry, payload, nested, settings, false);
                    task::element_finished();
                    result
                })
            }
            Some(ChunkOf { call, first }) => {
                // SAFETY: as for a future, with an offset from
                // `chunk_entry_offset`.
                let entry = unsafe { chunk_entry_at(entry_offset) };
                let streams = settings.streams.map(|s| s.skip(first));
                let stop = settings.stops_at_failure();
                match self.captures.as_mut().filter(|c| c.call == call) {
                    None => (
                        Err(Error::Protocol(format!(
                            "the captures of call {call} never reached this worker"
                        ))),
                        Output::default(),
                    ),
                    Some(c) => captured(&mut self.fds, keep, || {
                        let payload = payload?;
                        nested.run(|| {
                            body::catch(|| {
                                entry(c, payload, stop, streams, &mut task::WorkerEvents)
                            })
                            .map_err(Error::from)
                            .and_then(|r| r)
                        })
                    }),
                }
            }
        };
        task::end_task();
        memory::task_ended();
        ran
    }

    /// Sends task `id`'s answer: its value (or why it has none) and what it
    /// printed; a value of [`SHARED_FROM`] bytes or more through the outbox
    /// when the leader allows it. Value and output together over the frame
    /// limit are answered as `TooLarge`, and the worker serves on.
    fn answer(
        &mut self,
        id: u64,
        result: Result<Vec<u8>, Error>,
        output: Output,
    ) -> Result<(), Error> {
        let (outcome, value) = match result {
            Ok(value) => (Outcome::Value, value),
            Err(Error::Panicked { panic, .. }) => (Outcome::Panicked(panic), Vec::new()),
            Err(e) => (
                Outcome::Failed {
                    message: e.to_string(),
                },
                Vec::new(),
            ),
        };
        memory::value_made(value.len());
        let mut payload = &value[..];
        if self.use_outbox
            && value.len() >= SHARED_FROM
            && let Some(outbox) = SharedPages::with_room(&mut self.outbox, value.len(), OUTBOX_NAME)
        {
            let place = outbox
                .place(&[&value])
                .pop()
                .expect("one place per payload");
            task::send(&FromWorker::InOutbox(place), &[])?;
            payload = &[];
        }
        let done = FromWorker::Done {
            id,
            outcome,
            output,
        };
        let sent = task::send(&done, payload);
        // Sent: a large buffer serves the next large value.
        protocol::bulk::reuse(value);
        match sent {
            Err(Error::TooLarge { size, limit, .. }) => task::send(
                &FromWorker::Done {
                    id,
                    outcome: Outcome::TooLarge { size, limit },
                    output: Output::default(),
                },
                &[],
            ),
            other => other,
        }
    }
}

/// A copy of bytes, in a buffer of their size (huge pages when large).
fn copied(bytes: &[u8]) -> Vec<u8> {
    let mut v = protocol::bulk::vec_with_capacity(bytes.len());
    v.extend_from_slice(bytes);
    v
}

/// Runs a task with its output captured at the fds; `keep` false silences
/// it (`stdout = false`).
fn captured<R>(fds: &mut Option<FdCapture>, keep: bool, f: impl FnOnce() -> R) -> (R, Output) {
    match fds.as_mut() {
        Some(fds) => fds.run(keep, f),
        None => (f(), Output::default()),
    }
}
