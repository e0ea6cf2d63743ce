//! Backends: the places futures and `foreach!` chunks run, one file (or
//! folder) per kind behind the one [`Backend`] trait, so that neither the
//! `Future` handle nor the map engine ever knows which kind runs its work
//! (the shape of crossbeam-channel's `flavors/`).
//!
//! * [`Backend::submit`] takes one [`Work`]: a future or a chunk of a
//!   `foreach!` call, its payload as bytes and its [`Settings`].
//! * [`Backend::chunk_workers`] tells the map engine, once per call, how
//!   this backend runs chunks: threads of this process that it lends to the
//!   call ([`LendThreads`]: the bodies borrow the caller's captures and
//!   elements, nothing is encoded), or workers elsewhere that take each
//!   chunk as a [`Work`] through `submit`. The engine calls down into the
//!   backend; the backend never calls back into the engine.
//!
//! Either way a backend with `n` workers never runs more than `n` bodies at
//! once, futures and chunks together. Bodies see the next level of the plan
//! through a [`NestedPlan`], never through the registry of plans in force.

mod first_fit;
mod processes;
mod replies;
pub(crate) use replies::emit_log;
mod sequential;
pub(crate) mod slot;
mod slurm;
mod threads;

pub(crate) use processes::{
    check_answer as check_handshake_answer, command_for as host_command, run_agent,
    take_agent_environment,
};
pub(crate) use slot::ResultSlot;

use crate::body::NestedPlan;
use crate::body::capture::EntryFn;
use crate::body::chunk::ChunkFn;
use crate::plan::{Capacity, Resources};
use crate::progress::Progress;
use crate::protocol::Output;
use crate::settings::Settings;
use crate::{Error, Level, Plan};
use std::ops::Range;
use std::sync::Arc;

/// One unit of work, a future or a chunk of a `foreach!` call: what runs
/// (its entry), on what (its payload: a future's encoded captures, or a
/// chunk's encoded elements) and how (its settings, carried unchanged from
/// the macro to the worker).
pub(crate) struct Work {
    pub(crate) entry: Entry,
    pub(crate) payload: Vec<u8>,
    pub(crate) settings: Settings,
}

/// What a [`Work`] runs.
pub(crate) enum Entry {
    /// A future's body.
    Future(EntryFn),
    /// A chunk of a call's elements.
    Chunk(Chunk),
}

/// A chunk of a `foreach!` call, as a backend sees it.
pub(crate) struct Chunk {
    /// The call site's chunk entry function.
    pub(crate) entry: ChunkFn,
    /// The call's captures, which a worker keeps for the call's next chunks.
    pub(crate) call: Arc<CallCaptures>,
    /// The chunk's element indices.
    pub(crate) elements: Range<usize>,
    /// The call's bar and what this chunk has reported to it.
    pub(crate) progress: Option<Arc<ChunkProgress>>,
}

impl Work {
    /// The chunk this work is; `None` for a future.
    pub(crate) fn chunk(&self) -> Option<&Chunk> {
        match &self.entry {
            Entry::Future(_) => None,
            Entry::Chunk(c) => Some(c),
        }
    }

    /// A chunk's element indices; `None` for a future.
    pub(crate) fn elements(&self) -> Option<Range<usize>> {
        self.chunk().map(|c| c.elements.clone())
    }

    /// A chunk's share of its call's bar.
    pub(crate) fn progress(&self) -> Option<&Arc<ChunkProgress>> {
        self.chunk().and_then(|c| c.progress.as_ref())
    }
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
    /// For a cached call: its key with every element's (the same in a rerun
    /// of the same call), under which a backend whose work outlives the
    /// leader (Slurm jobs) records it, so that a rerun finds it again.
    pub(crate) durable: Option<u128>,
}

/// A chunk of an earlier run of the same cached call that a backend found
/// again (its answer there, or its job still running): its elements and
/// the slot its values appear in.
pub(crate) type Resumed = (std::ops::Range<usize>, Arc<ResultSlot>);

/// A chunk's share of its call's progress bar: the elements it reported
/// while running, so that its end adds only the rest.
pub(crate) struct ChunkProgress {
    pub(crate) bar: Arc<Progress>,
    pub(crate) reported: std::sync::atomic::AtomicU64,
}

/// A backend: something that runs futures and `foreach!` chunks.
pub(crate) trait Backend: Send + Sync {
    /// Starts `work`, blocking while every worker is busy (R semantics).
    fn submit(&self, work: Work) -> Submitted;
    /// Starts all of `works` (a call's chunks, for workers that take them
    /// at once: a Slurm job array).
    fn submit_all(&self, works: Vec<Work>) -> Vec<Submitted> {
        works.into_iter().map(|w| self.submit(w)).collect()
    }
    /// How this backend runs a `foreach!` call's chunks.
    fn chunk_workers(&self) -> ChunkWorkers<'_>;
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
    /// The backend that runs work asking for nothing in particular: `None`
    /// for this one (a backend of several alternatives names its first).
    fn plain(&self) -> Option<Result<Arc<dyn Backend>, Error>> {
        None
    }
    /// A call's chunks are about to be submitted: a backend may send its
    /// captures ahead (to every host at once, while the first chunks go).
    fn prepare_call(&self, call: &Arc<CallCaptures>) {
        let _ = call;
    }
    /// Whether this backend runs failed work again itself (`retries`), so
    /// that the map engine must not run a lost chunk a second time.
    fn retries_itself(&self) -> bool {
        false
    }
    /// The chunks of an earlier run of `call` (a cached call) whose work
    /// outlived its leader: answered since, or still running. None here:
    /// only work that runs without its leader (Slurm jobs) can be found.
    fn resume(&self, call: &CallCaptures) -> Vec<Resumed> {
        let _ = call;
        Vec::new()
    }
}

/// How a backend runs a `foreach!` call's chunks, as it tells the map
/// engine once per call.
pub(crate) enum ChunkWorkers<'a> {
    /// Threads of this process join the call: its chunks run here and
    /// borrow the caller's captures and elements, nothing is encoded.
    Threads(&'a dyn LendThreads),
    /// Worker processes or jobs: each chunk is a [`Work`] given to
    /// [`Backend::submit`] (or, with `all_at_once`, all of them to
    /// [`Backend::submit_all`]).
    Remote {
        /// How many chunks can run at once.
        workers: usize,
        /// The workers take a call's chunks all at once (a Slurm job
        /// array).
        all_at_once: bool,
        /// The call cuts one chunk per worker unless it fixed their size:
        /// its chunks are all known up front (`all_at_once`), or each costs
        /// a worker of its own (`fresh` workers).
        chunk_per_worker: bool,
    },
}

/// Threads lent to one `foreach!` call.
pub(crate) trait LendThreads {
    /// Admits the calling thread and the free threads, tells `plan` how
    /// many there are (it answers how many have something to do), and runs
    /// `work` on the calling thread and on that many threads less one;
    /// returns when all have. Never more threads run bodies than the pool
    /// has workers, futures and calls together.
    fn lend(&self, plan: &mut dyn FnMut(usize) -> usize, work: &(dyn Fn() + Sync));
}

/// The backend of `backend`'s plan that runs work needing `r` (checked
/// only when something is asked for).
pub(crate) fn for_resources(
    backend: Arc<dyn Backend>,
    r: Option<&Resources>,
) -> Result<Arc<dyn Backend>, Error> {
    match r.filter(|r| !r.is_empty()) {
        None => match backend.plain() {
            None => Ok(backend),
            Some(plain) => plain,
        },
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

/// What a backend whose chunks run in this process answers when given a
/// chunk as bytes: the map engine never does that.
pub(crate) fn in_process_only() -> Error {
    Error::Protocol(
        "a chunk was sent as bytes to a backend that runs chunks in this process".into(),
    )
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
        Level::SlurmPool(pool) => start_slurm_pool(pool, nested.plan())?,
        Level::Cluster(cluster) => Arc::new(processes::ProcessPool::start(
            cluster.host_list().len(),
            false,
            nested.plan(),
            Box::new(processes::ClusterLauncher::new(cluster)),
        )?),
    })
}

/// How many workers each allocation of a Slurm pool runs, given the plan
/// below the pool.
pub(crate) fn pool_workers_per_allocation(nested: &Plan) -> usize {
    processes::workers_per_allocation(nested)
}

/// A worker pool on Slurm: outside an allocation, workers in allocations of
/// their own; inside one (`salloc`, a batch job), steps of that allocation,
/// one worker per task, as a cluster plan's there.
fn start_slurm_pool(
    pool: &crate::plan::SlurmPool,
    nested: &Plan,
) -> Result<Arc<dyn Backend>, Error> {
    if std::env::var_os("SLURM_JOB_ID").is_some() {
        let cluster = crate::plan::Cluster::workers_auto()
            .via(crate::plan::Via::Srun)
            .env(pool.env.clone())
            .launch_timeout(pool.launch_timeout);
        return Ok(Arc::new(processes::ProcessPool::start(
            cluster.host_list().len(),
            false,
            nested,
            Box::new(processes::ClusterLauncher::new(&cluster)),
        )?));
    }
    let per = processes::workers_per_allocation(nested);
    // The pool takes the nested multiprocess level's place.
    let inner = if matches!(nested.first(), Level::Multiprocess { fresh: false, .. }) {
        nested.nested()
    } else {
        nested.clone()
    };
    let threads = match inner.first() {
        Level::Multithread { workers } | Level::Multiprocess { workers, .. } => *workers,
        _ => 1,
    };
    // At most `MAX_WORKERS`: checked with the plan (`parse::check_pool`).
    let workers = pool.max_allocations().saturating_mul(per);
    let launcher = processes::AllocationLauncher::new(pool, per, threads)?;
    Ok(Arc::new(processes::ProcessPool::start(
        workers,
        false,
        &inner,
        Box::new(launcher),
    )?))
}
