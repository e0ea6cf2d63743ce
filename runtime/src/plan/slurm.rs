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
