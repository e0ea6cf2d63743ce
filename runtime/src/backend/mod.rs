//! Backends: the places futures and `foreach!` chunks run, one file (or
//! folder) per kind behind the one [`Backend`] trait, so that neither the
//! `Future` handle nor the map engine ever knows which kind runs its work
//! (the shape of crossbeam-channel's `flavors/`).
//!
//! * [`Backend::submit`] takes a future ([`Task`]): its entry function and
//!   encoded captures.
//! * [`Backend::run_map`] takes a whole `foreach!` call ([`MapCall`]) and
//!   returns when every chunk of it has ended. A backend whose workers live
//!   in this process lets them join the call ([`MapCall::work_here`]: the
//!   bodies borrow the caller's captures and elements, nothing is encoded); a
//!   backend of worker processes lets the call hand it chunks as bytes
//!   ([`MapCall::send_chunks`] through [`ChunkWorkers`]).
//!
//! Either way a backend with `n` workers never runs more than `n` bodies at
//! once, futures and chunks together. Bodies see the next level of the plan
//! through a [`NestedPlan`], never through the registry of plans in force.

mod first_fit;
mod processes;
mod replies;
mod sequential;
mod slot;
mod slurm;
mod threads;

pub(crate) use processes::{command_for as host_command, run_agent, take_agent_environment};
pub(crate) use slot::ResultSlot;

use crate::body::NestedPlan;
use crate::body::TimeLimit;
use crate::body::capture::EntryFn;
use crate::body::chunk::ChunkFn;
use crate::plan::{Capacity, Resources};
use crate::progress::Progress;
use crate::protocol::Output;
use crate::rng::Streams;
use crate::{Error, Level};
use std::sync::Arc;

/// One future's work: its entry function and its encoded captures.
pub(crate) struct Task {
    pub(crate) entry: EntryFn,
    pub(crate) captures: Vec<u8>,
    pub(crate) label: Option<String>,
    /// The future's random stream, with `seed`.
    pub(crate) stream: Option<Streams>,
    /// `stdout = true`: capture what the body prints.
    pub(crate) capture_output: bool,
    /// `timeout = "..."`.
    pub(crate) timeout: Option<TimeLimit>,
    /// What it needs (empty: nothing in particular).
    pub(crate) resources: Resources,
}

/// Where a submitted task's value will appear.
pub(crate) enum Submitted {
    /// Evaluated already (Sequential) or refused at once, with what the
    /// body printed.
    Ready(Result<Vec<u8>, Error>, Output),
    /// Running elsewhere; the slot is filled when it ends.
    Running(Arc<ResultSlot>),
}

/// The captures of one `foreach!` call, encoded once and sent to each
/// worker process at most once.
pub(crate) struct CallCaptures {
    pub(crate) id: u64,
    pub(crate) bytes: Vec<u8>,
}

/// One chunk of a `foreach!` call, as bytes for a worker process.
pub(crate) struct ChunkTask {
    pub(crate) entry: ChunkFn,
    pub(crate) call: Arc<CallCaptures>,
    pub(crate) elements: Vec<u8>,
    pub(crate) stop_at_failure: bool,
    pub(crate) label: Option<String>,
    /// The random streams of the chunk's elements, from its first element.
    pub(crate) streams: Option<Streams>,
    /// The element index of the chunk's first element.
    pub(crate) first: usize,
    /// How many elements it has.
    pub(crate) len: usize,
    /// `stdout = true`: capture what the elements print.
    pub(crate) capture_output: bool,
    /// `timeout = "..."`, per element.
    pub(crate) timeout: Option<TimeLimit>,
    /// What the chunk needs (empty: nothing in particular).
    pub(crate) resources: Resources,
    /// The call's bar and what this chunk has reported to it.
    pub(crate) progress: Option<Arc<ChunkProgress>>,
}

/// A chunk's share of its call's progress bar: the elements it reported
/// while running, so that its end adds only the rest.
pub(crate) struct ChunkProgress {
    pub(crate) bar: Arc<Progress>,
    pub(crate) reported: std::sync::atomic::AtomicU64,
}

/// A backend: something that runs futures and `foreach!` calls.
pub(crate) trait Backend: Send + Sync {
    /// Starts `task`, blocking while every worker is busy (R semantics).
    fn submit(&self, task: Task) -> Submitted;
    /// Runs every chunk of `call`, blocking while every worker is busy, and
    /// returns when all have ended (their outputs are in the call).
    fn run_map(&self, call: &dyn MapCall) -> Result<(), Error>;
    /// Workers that are idle now.
    fn free_workers(&self) -> usize;
    /// The most one future or call can have here.
    fn capacity(&self) -> Capacity;
    /// Whether this backend enforces a future's `timeout` itself, so that
    /// the leader must not count time against it (a Slurm job waits in the
    /// queue before its limit starts).
    fn keeps_time_limits(&self) -> bool {
        false
    }
    /// The backend for work that needs `r`: `None` for this one, when it
    /// can meet it (a backend of several alternatives names one of them).
    fn choose(&self, r: &Resources) -> Result<Option<Arc<dyn Backend>>, Error> {
        match self.capacity().refuses(r) {
            None => Ok(None),
            Some(why) => Err(Error::Resources {
                asked: r.to_string(),
                why,
            }),
        }
    }
}

/// The backend of `backend`'s plan that runs work needing `r` (checked
/// only when something is asked for).
pub(crate) fn for_resources(
    backend: Arc<dyn Backend>,
    r: Option<&Resources>,
) -> Result<Arc<dyn Backend>, Error> {
    match r.filter(|r| !r.is_empty()) {
        None => Ok(backend),
        Some(r) => {
            r.check().map_err(|why| Error::Resources {
                asked: r.to_string(),
                why,
            })?;
            Ok(backend.choose(r)?.unwrap_or(backend))
        }
    }
}

/// What this machine offers one future: its cores and memory.
pub(crate) fn this_machine(name: String) -> Capacity {
    Capacity {
        name,
        cpus: u32::try_from(crate::cores::available_cores()).ok(),
        mem: Some(crate::cores::available_memory()),
        time: None,
        gpus: Some(0),
        nodes: Some(1),
        slurm: false,
    }
}

/// A `foreach!` call as a backend sees it: chunks it can run in this
/// process, or hand out as bytes.
pub(crate) trait MapCall: Sync {
    /// Cuts the call into chunks for up to `workers` that run them in this
    /// process; called once, before any [`MapCall::work_here`]. Returns how
    /// many workers have something to do (fewer when there are fewer
    /// elements).
    fn plan_here(&self, workers: usize) -> usize;
    /// Runs chunks in the calling thread until none is left (or the call
    /// stops at a failure). Several threads may do so at once.
    fn work_here(&self);
    /// Hands the call's chunks to worker processes, as bytes, and returns
    /// when every chunk has ended.
    fn send_chunks(&self, workers: &dyn ChunkWorkers) -> Result<(), Error>;
}

/// Worker processes, as a map call hands them chunks.
pub(crate) trait ChunkWorkers {
    /// How many chunks can run at once.
    fn workers(&self) -> usize;
    /// Starts `chunk` on an idle worker, blocking while all are busy.
    fn submit_chunk(&self, chunk: ChunkTask) -> Submitted;
    /// Whether these workers take a call's chunks all at once (a Slurm job
    /// array): the call then cuts one chunk per worker unless it fixed
    /// their size, and hands them over together.
    fn takes_chunks_at_once(&self) -> bool {
        false
    }
    /// Starts all of `chunks` (for workers that take them at once).
    fn submit_chunks(&self, chunks: Vec<ChunkTask>) -> Vec<Submitted> {
        chunks.into_iter().map(|c| self.submit_chunk(c)).collect()
    }
}

/// Bytes of captures and elements sent to worker processes so far.
pub(crate) fn bytes_sent() -> u64 {
    processes::BYTES_SENT.load(std::sync::atomic::Ordering::Relaxed)
}

/// Starts the backend of one plan level; `nested` is what its bodies see as
/// their plan.
pub(crate) fn start(level: &Level, nested: NestedPlan) -> Result<Arc<dyn Backend>, Error> {
    Ok(match level {
        Level::Sequential => Arc::new(sequential::SequentialBackend::new(nested)),
        Level::Multithread { workers } => Arc::new(threads::ThreadPool::start(*workers, nested)?),
        Level::Multiprocess { workers, fresh } => Arc::new(processes::ProcessPool::start(
            *workers,
            *fresh,
            nested.plan(),
            Box::new(processes::LocalLauncher {
                env: processes::thread_shares(*workers),
                cwd: None,
            }),
        )?),
        Level::Slurm(spec) => Arc::new(slurm::SlurmBackend::start(spec, nested.plan())?),
        Level::FirstFit(levels) => Arc::new(first_fit::FirstFit::new(levels, nested)),
        Level::Cluster(cluster) => Arc::new(processes::ProcessPool::start(
            cluster.host_list().len(),
            false,
            nested.plan(),
            Box::new(processes::ClusterLauncher::new(cluster)),
        )?),
    })
}
