//! Multiprocess: persistent worker processes (R's `multisession`), or a
//! fresh process per future (`callr`).
//!
//! Each worker is started by the pool's [`Launcher`] and talks over a
//! [`Link`]: frames on its stdin and stdout, so no port is opened and no
//! other process can reach it. One reader thread per worker (`reader`)
//! turns its replies into filled result slots. A worker that dies takes only
//! its own task with it: that task's value is `Error::WorkerDied` (pid,
//! signal or exit status, label), and the pool starts a replacement when one
//! is next needed.
//!
//! Admission follows R: starting a task while every worker is busy blocks
//! until one is free. Workers start on first need, up to `n`.

mod agent;
mod allocation_watch;
mod allocations;
mod aside;
mod cluster;
mod connection;
mod delivery;
mod fds;
mod host_command;
mod link;
mod outbox;
mod reader;
mod silence;
mod stash;

pub(crate) use agent::{run_agent, take_agent_environment};
pub(crate) use allocations::{AllocationLauncher, workers_per_allocation};
pub(crate) use cluster::ClusterLauncher;
pub(crate) use host_command::command_for;
pub(crate) use link::{LocalLauncher, check_answer, thread_shares};

use super::{Backend, ChunkProgress, ChunkWorkers, Entry, ResultSlot, Submitted, Work};
use crate::body::capture::entry_offset;
use crate::body::chunk::chunk_entry_offset;
use crate::protocol::shared_memory::{INBOX_NAME, SHARED_FROM, SharedPages};
use crate::protocol::wire::{self, ChunkOf, ToWorker};
use crate::protocol::{Output, WORKER_ENV, codec};
use crate::settings::Settings;
use crate::sync::lock;
use crate::{Error, Plan};
use link::{Launcher, Link, launch_error};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// The work a worker is running: its slot and what the reader needs of it.
pub(super) struct Running {
    id: u64,
    slot: Arc<ResultSlot>,
    /// Its settings (label and time limit, for errors and the silence limit).
    settings: Settings,
    /// For a chunk, its elements (for the trace).
    elements: Option<std::ops::Range<usize>>,
    /// The bar of the call a chunk belongs to.
    progress: Option<Arc<ChunkProgress>>,
    /// When it was sent, for the trace.
    sent: std::time::Instant,
}

/// One worker of the pool.
pub(super) struct Worker {
    pid: u32,
    /// Where it runs, for messages (`None`: this machine).
    host: Option<String>,
    /// The `foreach!` call whose captures this worker keeps.
    kept_call: Mutex<Option<u64>>,
    /// How a remote worker gets captures through its host's agent (once
    /// per host); `None` on this machine.
    host_captures: Option<link::HostCaptures>,
    /// Set when the pool killed this worker: it must never be reused, even
    /// if it answered before the signal landed.
    killed: AtomicBool,
    /// The task (and element) that ran past its time limit: the worker said
    /// so and ends.
    timed_out: Mutex<Option<(u64, Option<u64>)>>,
    /// `None` once the pool has closed this worker's channel.
    input: Mutex<Option<Box<dyn Write + Send>>>,
    process: Mutex<Box<dyn link::WorkerProcess>>,
    running: Mutex<Option<Running>>,
    /// When it last became idle (the pool ends workers idle past the
    /// launcher's limit).
    idle_since: Mutex<std::time::Instant>,
    /// Set, under `running`, when the reader has seen the channel end: a task
    /// given to this worker afterwards would never be answered.
    ended: AtomicBool,
    /// When anything was last heard from it (`silence`).
    last_heard: Mutex<std::time::Instant>,
    /// Set when it was killed for not answering: why.
    unresponsive: Mutex<Option<String>>,
    /// Its inbox, shared memory for large payloads
    /// (`protocol/shared_memory.rs`); always `None` for a worker on another
    /// host, whose payloads go through the connection.
    inbox: Mutex<Option<SharedPages>>,
    /// Its outbox, the worker's shared memory for large answers, as the
    /// reader maps it (`outbox.rs`); never used by a worker on another host.
    outbox: outbox::Outbox,
}

impl Worker {
    /// `process 1234`, or `process 1234 on node2`.
    fn describe(&self) -> String {
        match &self.host {
            Some(host) => format!("process {} on {host}", self.pid),
            None => format!("process {}", self.pid),
        }
    }
}

impl crate::backend::slot::Answerer for Worker {
    fn describe(&self) -> String {
        format!("worker {}", Worker::describe(self))
    }
}

struct PoolState {
    idle: Vec<Arc<Worker>>,
    live: usize,
    /// Places whose worker could not be started again while others served
    /// (a host that went away): the pool goes on with fewer workers, and
    /// tries one of them again now and then.
    lost: usize,
    /// When a place was last lost.
    lost_at: Option<std::time::Instant>,
    closed: bool,
    /// Workers being started on threads of their own (a slow launcher).
    starting: usize,
    /// Why the last worker started in the background could not be, for
    /// callers waiting while no worker lives.
    failed: Option<Error>,
}

pub(super) struct Pool {
    state: Mutex<PoolState>,
    freed: Condvar,
    size: usize,
    fresh: bool,
    nested: Plan,
    launcher: Box<dyn Launcher>,
    next_id: AtomicU64,
    /// Every worker started, for the silence watcher.
    workers: Mutex<Vec<std::sync::Weak<Worker>>>,
    /// Callers waiting for a worker (told to the launcher).
    demand: Arc<link::Demand>,
}

/// How long a place whose worker could not be started stays unused.
const RETRY_LOST_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

pub(crate) struct ProcessPool {
    shared: Arc<Pool>,
}

impl ProcessPool {
    pub(crate) fn start(
        size: usize,
        fresh: bool,
        nested: &Plan,
        launcher: Box<dyn Launcher>,
    ) -> Result<ProcessPool, Error> {
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
        fds::make_room(size)?;
        let pool = ProcessPool {
            shared: Arc::new(Pool {
                state: Mutex::new(PoolState {
                    idle: Vec::new(),
                    live: 0,
                    lost: 0,
                    lost_at: None,
                    closed: false,
                    starting: 0,
                    failed: None,
                }),
                freed: Condvar::new(),
                size,
                fresh,
                nested: nested.clone(),
                launcher,
                next_id: AtomicU64::new(1),
                workers: Mutex::new(Vec::new()),
                demand: Arc::new(link::Demand::default()),
            }),
        };
        pool.shared.launcher.attach(pool.shared.demand.clone());
        silence::watch(&pool.shared);
        Ok(pool)
    }
}

impl Pool {
    /// An idle worker, starting one if fewer than `size` live; blocks while
    /// all are busy.
    fn acquire(self: &Arc<Self>) -> Result<Arc<Worker>, Error> {
        if self.launcher.starts_slowly() {
            return self.acquire_started_aside();
        }
        let mut state = lock(&self.state);
        loop {
            if let Some(w) = take_idle(&mut state) {
                return Ok(w);
            }
            // A lost place is tried again once a while has passed.
            let retry_lost = state.lost > 0
                && state
                    .lost_at
                    .is_some_and(|t| t.elapsed() >= RETRY_LOST_AFTER);
            if retry_lost {
                state.lost -= 1;
                state.lost_at = Some(std::time::Instant::now());
            }
            if state.live + state.lost < self.size {
                state.live += 1;
                drop(state);
                match spawn_worker(self) {
                    Ok(w) => return Ok(w),
                    Err(e) => {
                        state = lock(&self.state);
                        state.live -= 1;
                        self.freed.notify_one();
                        if state.live == 0 {
                            return Err(e);
                        }
                        // Others serve: go on without this place.
                        log::warn!("futurize: {e}; going on with the other workers");
                        state.lost += 1;
                        state.lost_at = Some(std::time::Instant::now());
                        continue;
                    }
                }
            }
            state = self.freed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// A worker finished its future: back to idle, or closed.
    fn release(&self, worker: &Arc<Worker>) {
        let mut state = lock(&self.state);
        if self.fresh
            || state.closed
            || worker.killed.load(Ordering::Acquire)
            || lock(&worker.process).retired()
        {
            lock(&worker.input).take();
        } else {
            *lock(&worker.idle_since) = std::time::Instant::now();
            state.idle.push(worker.clone());
        }
        self.freed.notify_one();
    }

    /// A worker's channel ended: it is gone, whatever the reason.
    fn forget(&self, worker: &Arc<Worker>) {
        let mut state = lock(&self.state);
        state.idle.retain(|w| !Arc::ptr_eq(w, worker));
        state.live -= 1;
        self.freed.notify_one();
    }
}

/// The most recently idle worker, ending those whose host takes no more
/// work.
fn take_idle(state: &mut PoolState) -> Option<Arc<Worker>> {
    while let Some(w) = state.idle.pop() {
        if lock(&w.process).retired() {
            lock(&w.input).take();
            continue;
        }
        return Some(w);
    }
    None
}

/// Starts one worker through the pool's launcher, greets it, and starts
/// its reader.
fn spawn_worker(shared: &Arc<Pool>) -> Result<Arc<Worker>, Error> {
    let mut link: Link = shared.launcher.launch()?;
    let pid = link::handshake(&mut link, &shared.nested)?;
    if link.process.host().is_none() {
        // On this machine: large answers may come through shared memory.
        let limit = codec::max_frame_bytes();
        wire::write_message(&mut link.input, &ToWorker::UseOutbox, &[], limit)?;
    }
    let Link {
        input,
        output,
        process,
    } = link;
    let worker = Arc::new(Worker {
        pid,
        host: process.host().map(str::to_string),
        kept_call: Mutex::new(None),
        host_captures: process.captures_through_host(),
        killed: AtomicBool::new(false),
        timed_out: Mutex::new(None),
        input: Mutex::new(Some(input)),
        process: Mutex::new(process),
        running: Mutex::new(None),
        idle_since: Mutex::new(std::time::Instant::now()),
        ended: AtomicBool::new(false),
        last_heard: Mutex::new(std::time::Instant::now()),
        unresponsive: Mutex::new(None),
        inbox: Mutex::new(None),
        outbox: outbox::Outbox::new(),
    });
    {
        let mut all = lock(&shared.workers);
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&worker));
    }
    let replies = Box::new(reader::Replies::new(shared.clone(), worker.clone()));
    let delivered = lock(&worker.process).deliver(output, replies);
    if let Err((output, replies)) = delivered {
        std::thread::Builder::new()
            .name(format!("futurize-reader-{pid}"))
            .spawn(move || reader::read_replies(replies, output))
            .map_err(launch_error)?;
    }
    Ok(worker)
}

/// Bytes of captures and elements sent to worker processes, for tests and
/// benchmarks.
pub(crate) static BYTES_SENT: AtomicU64 = AtomicU64::new(0);

impl ProcessPool {
    /// Sends `work` to an idle worker, which then runs it as task `id`.
    /// When the channel turns out broken before the task could start (the
    /// worker died while idle), the task goes to another worker: it never
    /// ran, so it is not lost with that one.
    fn dispatch(&self, work: &Work) -> Submitted {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = ResultSlot::new();
        loop {
            let worker = match self.shared.acquire() {
                Ok(w) => w,
                Err(e) => return Submitted::Ready(Err(e), Output::default()),
            };
            // Its last answer, if still lent, is copied out before the
            // worker may write its outbox again.
            worker.outbox.take_back();
            {
                let mut running = lock(&worker.running);
                // An idle worker that died just now: its reader is gone (or
                // going), so take another one.
                if worker.ended.load(Ordering::Acquire) {
                    continue;
                }
                // One future's caller waits for this answer alone; a map's
                // chunks leave the leader's cores to its connections.
                if worker.host.is_some() && matches!(work.entry, Entry::Future(_)) {
                    slot.spin_for_remote_answer();
                }
                *running = Some(Running {
                    id,
                    slot: slot.clone(),
                    settings: work.settings.clone(),
                    elements: work.elements(),
                    progress: work.progress().cloned(),
                    sent: std::time::Instant::now(),
                });
            }
            let limit = codec::max_frame_bytes();
            let mut sent = Ok(());
            let mut messages = messages(&worker, id, work);
            if let Some((ToWorker::KeepCaptures { call }, captures)) = messages.first()
                && let Some(through_host) = &worker.host_captures
            {
                // Once per host, not once per worker.
                let through = through_host(*call, captures);
                messages.remove(0);
                match through {
                    Ok(bytes) => {
                        BYTES_SENT.fetch_add(bytes, Ordering::Relaxed);
                    }
                    Err(e) => sent = Err(e),
                }
            }
            for (message, payload) in through_inbox(&worker, messages) {
                if sent.is_err() {
                    break;
                }
                if let ToWorker::InInbox(shared) = &message {
                    BYTES_SENT.fetch_add(shared.len, Ordering::Relaxed);
                }
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
                        *lock(&worker.kept_call) = None;
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
                        lock(&w.process).kill();
                    }
                }
            }));
            return Submitted::Running(slot);
        }
    }
}

/// Moves the large payloads of one dispatch into a local worker's inbox:
/// each such message is preceded by an `InInbox` one saying where its payload
/// is, and goes with an empty payload itself. Everything stays on the pipe
/// for a remote worker, for small payloads, and when no shared memory can be
/// had.
fn through_inbox<'p>(
    worker: &Worker,
    messages: Vec<(ToWorker, &'p [u8])>,
) -> Vec<(ToWorker, &'p [u8])> {
    let large = |payload: &[u8]| payload.len() >= SHARED_FROM;
    if worker.host.is_some() || !messages.iter().any(|(_, p)| large(p)) {
        return messages;
    }
    let payloads: Vec<&[u8]> = messages
        .iter()
        .map(|(_, p)| *p)
        .filter(|p| large(p))
        .collect();
    let needed = payloads.iter().map(|p| p.len().next_multiple_of(64)).sum();
    let mut inbox = lock(&worker.inbox);
    let Some(inbox) = SharedPages::with_room(&mut inbox, needed, INBOX_NAME) else {
        return messages;
    };
    let mut placed = inbox.place(&payloads).into_iter();
    let mut out = Vec::with_capacity(messages.len() + payloads.len());
    for (message, payload) in messages {
        if large(payload) {
            let shared = placed.next().expect("one place per large payload");
            out.push((ToWorker::InInbox(shared), &[][..]));
            out.push((message, &[][..]));
        } else {
            out.push((message, payload));
        }
    }
    out
}

/// The messages that make `worker` run `work` as task `id`: for a chunk,
/// first its call's captures unless the worker keeps them already.
fn messages<'w>(worker: &Worker, id: u64, work: &'w Work) -> Vec<(ToWorker, &'w [u8])> {
    let mut messages = Vec::with_capacity(2);
    let (entry_offset, chunk) = match &work.entry {
        Entry::Future(entry) => (entry_offset(*entry), None),
        Entry::Chunk(chunk) => {
            let mut kept = lock(&worker.kept_call);
            if *kept != Some(chunk.call.id) {
                messages.push((
                    ToWorker::KeepCaptures {
                        call: chunk.call.id,
                    },
                    &chunk.call.bytes[..],
                ));
                *kept = Some(chunk.call.id);
            }
            let of = ChunkOf {
                call: chunk.call.id,
                first: chunk.elements.start as u64,
            };
            (chunk_entry_offset(chunk.entry), Some(of))
        }
    };
    let run = ToWorker::Run {
        id,
        entry_offset,
        chunk,
        settings: work.settings.clone(),
    };
    messages.push((run, &work.payload[..]));
    messages
}

impl Backend for ProcessPool {
    fn submit(&self, work: Work) -> Submitted {
        let submitted = self.dispatch(&work);
        if let Entry::Future(_) = work.entry {
            // Sent: a large buffer serves the next future's captures.
            crate::protocol::bulk::reuse(work.payload);
        }
        submitted
    }

    fn chunk_workers(&self) -> ChunkWorkers<'_> {
        ChunkWorkers::Remote {
            workers: self.shared.size,
            all_at_once: false,
            chunk_per_worker: self.shared.fresh,
        }
    }

    fn prepare_call(&self, call: &Arc<crate::backend::CallCaptures>) {
        self.shared.launcher.prepare_call(call);
    }

    fn capacity(&self) -> crate::plan::Capacity {
        self.shared.launcher.capacity()
    }

    fn free_workers(&self) -> usize {
        let state = lock(&self.shared.state);
        self.shared.size - state.live - state.lost + state.idle.len()
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
