//! The Slurm plan: every future a batch job, every `foreach!` call one job
//! array whose tasks each run a chunk (R's future.batchtools with
//! `batchtools_slurm`).
//!
//! Text forms: `slurm` (at most 100 jobs in flight, as future.batchtools)
//! and `slurm:N`. Jobs read their work from, and leave their answers in, a
//! registry on the shared file system: `.futurize/` under the working
//! directory, or `FUTURIZE_REGISTRY`. A site's `#SBATCH` lines and `module
//! load`s go in a job template (`FUTURIZE_SLURM_TEMPLATE`, or
//! [`Slurm::template`]).

use super::Resources;
use std::fmt;
use std::path::PathBuf;

/// How many jobs a Slurm plan has in flight at most by default.
pub const DEFAULT_SLURM_JOBS: usize = 100;

/// Futures as Slurm jobs.
///
/// ```
/// use futurize_runtime::{Plan, Slurm};
/// use futurize_runtime::plan::Resources;
/// let p: Plan = Slurm::jobs().workers(4).resources(Resources::new().time("10m")).into();
/// assert_eq!(p.to_string(), "slurm:4");
/// assert_eq!(Plan::from(Slurm::jobs()).to_string(), "slurm");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slurm {
    pub(crate) workers: Option<usize>,
    pub(crate) template: Option<PathBuf>,
    pub(crate) resources: Resources,
    pub(crate) registry: Option<PathBuf>,
    /// The site's caps on escalated retries, and the time signal's margin.
    pub(crate) site: SiteLimits,
}

/// What a site allows a retry to grow to, and how long before its time
/// limit a job is told to hand back the rest of its chunk: set on the plan
/// ([`Slurm::most_memory`], [`Slurm::longest_time`], [`Slurm::time_signal`])
/// or in the job template (`#FUTURIZE most-memory=64G`, `#FUTURIZE
/// longest-time=24h`, `#FUTURIZE time-signal=2m`); the plan wins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct SiteLimits {
    pub(crate) most_memory: Option<String>,
    pub(crate) longest_time: Option<String>,
    pub(crate) time_signal: Option<String>,
}

impl Slurm {
    /// Every future a job, every `foreach!` call a job array; at most 100
    /// jobs in flight.
    pub fn jobs() -> Slurm {
        Slurm {
            workers: None,
            template: None,
            resources: Resources::default(),
            registry: None,
            site: SiteLimits::default(),
        }
    }

    /// The most memory a retry after running out of memory may ask for
    /// (default: the largest node's, from sinfo), as `mem` is written:
    /// `"64G"`. A template line `#FUTURIZE most-memory=64G` says the same.
    ///
    /// ```
    /// let p = futurize_runtime::Slurm::jobs().most_memory("64G").longest_time("24h");
    /// assert_eq!(p.to_string(), "slurm");
    /// ```
    pub fn most_memory(mut self, mem: impl Into<String>) -> Slurm {
        self.site.most_memory = Some(mem.into());
        self
    }

    /// The longest time limit a retry after running out of time may ask for
    /// (default: the longest partition's, from sinfo), as `time` is
    /// written: `"24h"`. A template line `#FUTURIZE longest-time=24h` says
    /// the same.
    pub fn longest_time(mut self, time: impl Into<String>) -> Slurm {
        self.site.longest_time = Some(time.into());
        self
    }

    /// How long before its time limit a job is told (SIGUSR1) to finish the
    /// element it runs and hand back the rest of its chunk (default: 60 s;
    /// Slurm may tell it up to a minute earlier). A template line
    /// `#FUTURIZE time-signal=2m` says the same.
    ///
    /// ```
    /// let p = futurize_runtime::Slurm::jobs().time_signal("2m");
    /// assert_eq!(p.to_string(), "slurm");
    /// ```
    pub fn time_signal(mut self, margin: impl Into<String>) -> Slurm {
        self.site.time_signal = Some(margin.into());
        self
    }

    /// At most `n` jobs in flight: creating one more future waits, and a
    /// `foreach!` call is split into at most `n` array tasks.
    ///
    /// # Panics
    /// If `n` is 0.
    pub fn workers(mut self, n: usize) -> Slurm {
        assert!(
            n >= 1,
            "Slurm::jobs().workers(0): at least 1 job must be allowed"
        );
        self.workers = Some(n);
        self
    }

    /// The job template: a shell script with the site's `#SBATCH` lines and
    /// `module load`s, and a line `{{command}}` where the job's command goes.
    pub fn template(mut self, path: impl Into<PathBuf>) -> Slurm {
        self.template = Some(path.into());
        self
    }

    /// What every job asks for unless its future or call says otherwise.
    pub fn resources(mut self, defaults: Resources) -> Slurm {
        self.resources = defaults;
        self
    }

    /// Where the registry lives (default: `FUTURIZE_REGISTRY`, else
    /// `.futurize/` under the working directory). It must be on a file
    /// system the compute nodes share.
    pub fn registry(mut self, dir: impl Into<PathBuf>) -> Slurm {
        self.registry = Some(dir.into());
        self
    }

    /// Jobs in flight at most.
    pub fn max_jobs(&self) -> usize {
        self.workers.unwrap_or(DEFAULT_SLURM_JOBS)
    }
}

impl fmt::Display for Slurm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.workers {
            Some(n) => write!(f, "slurm:{n}"),
            None => f.write_str("slurm"),
        }
    }
}

/// How many allocations a worker pool on Slurm holds at most by default.
pub const DEFAULT_POOL_ALLOCATIONS: usize = 10;

/// How long a pool's allocation may have no work before it is given back,
/// by default.
pub const DEFAULT_POOL_IDLE: std::time::Duration = crate::protocol::environment::POOL_IDLE_DEFAULT;

/// Worker pools on Slurm: batch jobs that only hold an allocation, each
/// running a host agent (started inside it with `srun --jobid=<job>
/// --overlap`, its stdio the link: no port is opened) whose worker
/// processes take futures and `foreach!` chunks as a cluster's do. Text
/// form `slurm-pool` (at most [`DEFAULT_POOL_ALLOCATIONS`]) and
/// `slurm-pool:N`.
///
/// Elastic: an allocation is asked for when work waits and no worker is
/// free (up to N), and given back once it has had no work for the idle time
/// ([`idle`](SlurmPool::idle), default 60 s); a pool with no work holds no
/// allocation. An allocation stops taking work a margin before its time
/// limit ([`drain_before`](SlurmPool::drain_before)) and a replacement is
/// asked for. A nested `multiprocess:W` level sizes each allocation: W
/// workers on W cpus (`slurm-pool:4/multiprocess:8`: at most 4 jobs of 8
/// cpus, 32 workers); without one, one worker per allocation. Inside an
/// allocation (`salloc`, a batch job), the pool's workers run as steps of
/// that allocation instead, one per task, as a `cluster` plan's do there.
///
/// ```
/// use futurize_runtime::{Plan, Slurm};
/// use std::time::Duration;
/// let p: Plan = Slurm::pool().allocations(4).idle(Duration::from_secs(30)).into();
/// assert_eq!(p.to_string(), "slurm-pool:4");
/// assert_eq!("slurm-pool:4/multiprocess:8".parse::<Plan>().unwrap().levels().len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SlurmPool {
    pub(crate) allocations: Option<usize>,
    /// The jobs that hold the allocations: template, resources, registry.
    pub(crate) jobs: Slurm,
    pub(crate) idle: Option<std::time::Duration>,
    pub(crate) drain: Option<std::time::Duration>,
    pub(crate) env: Vec<String>,
    pub(crate) launch_timeout: std::time::Duration,
}

impl Slurm {
    /// A pool of workers inside Slurm allocations ([`SlurmPool`]), at most
    /// [`DEFAULT_POOL_ALLOCATIONS`] of them.
    pub fn pool() -> SlurmPool {
        SlurmPool {
            allocations: None,
            jobs: Slurm::jobs(),
            idle: None,
            drain: None,
            env: Vec::new(),
            launch_timeout: super::cluster::DEFAULT_LAUNCH_TIMEOUT,
        }
    }
}

impl SlurmPool {
    /// At most `n` allocations at once.
    ///
    /// # Panics
    /// If `n` is 0.
    pub fn allocations(mut self, n: usize) -> SlurmPool {
        assert!(
            n >= 1,
            "Slurm::pool().allocations(0): at least 1 allocation must be allowed"
        );
        self.allocations = Some(n);
        self
    }

    /// How long an allocation may have no work before it is given back
    /// (default `FUTURIZE_POOL_IDLE`, else [`DEFAULT_POOL_IDLE`]; zero: as
    /// soon as its workers are idle).
    pub fn idle(mut self, limit: std::time::Duration) -> SlurmPool {
        self.idle = Some(limit);
        self
    }

    /// The idle time in force: the plan's, else `FUTURIZE_POOL_IDLE`'s
    /// (checked where the backend starts), else [`DEFAULT_POOL_IDLE`].
    pub fn idle_time(&self) -> std::time::Duration {
        self.idle
            .unwrap_or_else(|| crate::protocol::environment::POOL_IDLE.value())
    }

    /// How long before its time limit an allocation stops taking work
    /// (default: a quarter of its time limit, at most 5 minutes). It
    /// finishes what it runs; a replacement is asked for while work waits.
    pub fn drain_before(mut self, margin: std::time::Duration) -> SlurmPool {
        self.drain = Some(margin);
        self
    }

    /// What each allocation asks for (partition, time, mem; `cpus` defaults
    /// to its worker count).
    pub fn resources(mut self, r: Resources) -> SlurmPool {
        self.jobs = self.jobs.resources(r);
        self
    }

    /// The job template, as for [`Slurm::template`].
    pub fn template(mut self, path: impl Into<PathBuf>) -> SlurmPool {
        self.jobs = self.jobs.template(path);
        self
    }

    /// Where the allocations' small files live, as for [`Slurm::registry`].
    pub fn registry(mut self, dir: impl Into<PathBuf>) -> SlurmPool {
        self.jobs = self.jobs.registry(dir);
        self
    }

    /// Environment variables of the leader that the workers get too (srun
    /// passes the submitting environment, but a value set after the pool
    /// started does not travel otherwise).
    pub fn env<I, S>(mut self, names: I) -> SlurmPool
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.env.extend(names.into_iter().map(Into::into));
        self
    }

    /// How long starting an allocation's agent and workers may take once
    /// the allocation runs (default 60 s).
    pub fn launch_timeout(mut self, limit: std::time::Duration) -> SlurmPool {
        self.launch_timeout = limit;
        self
    }

    /// Allocations at most.
    pub fn max_allocations(&self) -> usize {
        self.allocations.unwrap_or(DEFAULT_POOL_ALLOCATIONS)
    }
}

impl fmt::Display for SlurmPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.allocations {
            Some(n) => write!(f, "slurm-pool:{n}"),
            None => f.write_str("slurm-pool"),
        }
    }
}
