//! Plans: where and how futures run, chosen by the user, never by the code
//! that creates the futures.
//!
//! A [`Plan`] is a list of levels. The first level runs the futures created by
//! the program; a future running on a worker of that level sees the next
//! level as its plan, and [`Sequential`] below the last one, so nested
//! parallelism never oversubscribes by accident. Every plan has a text form,
//! the one `FUTURIZE_PLAN` takes and `Display` prints.

mod cluster;
mod parse;
mod resources;
mod slurm;
mod suggest;

pub use cluster::{Cluster, DEFAULT_LAUNCH_TIMEOUT, HOST_CHARACTERS, Host, Via};
pub use resources::{Capacity, Resources, human_bytes, parse_duration, parse_memory};
pub use slurm::{
    DEFAULT_POOL_ALLOCATIONS, DEFAULT_POOL_IDLE, DEFAULT_SLURM_JOBS, Slurm, SlurmPool,
};

use crate::Error;
use std::fmt;
use std::str::FromStr;

pub use crate::error::VALID_PLAN_FORMS;

/// The most workers one level of a plan may have: threads of
/// `multithread:N`, processes of `multiprocess:N`, hosts of `cluster:...`.
/// Past it, a plan is an [`Error::Plan`] naming its text, before any worker
/// starts (each thread reserves a stack, each process three open files).
///
/// ```
/// use futurize_runtime::Plan;
/// use futurize_runtime::plan::MAX_WORKERS;
/// assert!(format!("multithread:{MAX_WORKERS}").parse::<Plan>().is_ok());
/// let e = format!("multiprocess:{}", MAX_WORKERS + 1).parse::<Plan>().unwrap_err();
/// assert!(e.to_string().contains("at most 4096"));
/// ```
pub const MAX_WORKERS: usize = 4096;

/// The most jobs a Slurm plan may have in flight (`slurm:N`): Slurm's own
/// default `MaxJobCount`.
///
/// ```
/// use futurize_runtime::Plan;
/// use futurize_runtime::plan::MAX_SLURM_JOBS;
/// assert!(format!("slurm:{}", MAX_SLURM_JOBS + 1).parse::<Plan>().is_err());
/// ```
pub const MAX_SLURM_JOBS: usize = 10_000;

/// One level of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Level {
    /// Evaluate each future in the calling thread, when it is created.
    Sequential,
    /// Evaluate futures on `workers` threads of this process.
    Multithread {
        /// Number of worker threads (at least 1).
        workers: usize,
    },
    /// Evaluate futures in worker processes running this executable.
    Multiprocess {
        /// Number of worker processes (at least 1).
        workers: usize,
        /// A new process for every future instead of persistent workers.
        fresh: bool,
    },
    /// Evaluate futures in worker processes on other machines.
    Cluster(Cluster),
    /// Evaluate each future as a Slurm job (a `foreach!` as a job array).
    Slurm(Slurm),
    /// Evaluate futures in worker processes inside Slurm allocations that
    /// grow with the work and end when idle.
    SlurmPool(SlurmPool),
    /// Several backends: each future or call runs on the first whose
    /// capacities meet its `resources` (text form `multiprocess:2|slurm`).
    FirstFit(Vec<Level>),
}

impl Level {
    /// Number of futures this level runs at once.
    pub fn workers(&self) -> usize {
        match self {
            Level::Sequential => 1,
            Level::Multithread { workers } | Level::Multiprocess { workers, .. } => *workers,
            Level::Cluster(c) => c.hosts.len(),
            Level::Slurm(s) => s.max_jobs(),
            Level::SlurmPool(p) => p.max_allocations(),
            Level::FirstFit(levels) => levels.first().map_or(1, Level::workers),
        }
    }
}

/// Where futures run: a list of [`Level`]s, never empty.
///
/// ```
/// use futurize_runtime::{Multithread, Plan, Sequential};
/// let p = Plan::from([Multithread::workers(2).into(), Sequential.into()]);
/// assert_eq!(p.to_string(), "multithread:2/sequential");
/// assert_eq!("multithread:2/sequential".parse::<Plan>().unwrap(), p);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Plan {
    levels: Vec<Level>,
}

impl Plan {
    /// The levels, outermost first.
    pub fn levels(&self) -> &[Level] {
        &self.levels
    }

    /// The level that runs futures created under this plan.
    pub fn first(&self) -> &Level {
        &self.levels[0]
    }

    /// The plan a future sees while it runs on a worker of the first level:
    /// the remaining levels, or `Sequential` below the last one.
    pub fn nested(&self) -> Plan {
        if self.levels.len() > 1 {
            Plan {
                levels: self.levels[1..].to_vec(),
            }
        } else {
            Sequential.into()
        }
    }

    /// Several backends for one level: each future or `foreach!` call runs
    /// on the first of `alternatives` whose capacities meet its
    /// `resources` (a request none can meet is an instant error naming what
    /// each offers). Text form: `multiprocess:2|slurm`.
    ///
    /// ```
    /// use futurize_runtime::{Multiprocess, Plan, Slurm};
    /// let p = Plan::first_fit([Multiprocess::workers(2).into(), Slurm::jobs().into()]);
    /// assert_eq!(p.to_string(), "multiprocess:2|slurm");
    /// ```
    ///
    /// # Panics
    /// If an alternative has more than one level (a nested plan goes after
    /// the alternatives: `Plan::from([Plan::first_fit(..), inner])`), or
    /// none is given.
    pub fn first_fit(alternatives: impl IntoIterator<Item = Plan>) -> Plan {
        let levels: Vec<Level> = alternatives
            .into_iter()
            .map(|p| {
                assert!(
                    p.levels.len() == 1,
                    "Plan::first_fit: `{p}` has several levels; give the nested plan after \
                     the alternatives: Plan::from([Plan::first_fit(..), inner])"
                );
                p.levels.into_iter().next().expect("one level")
            })
            .collect();
        assert!(!levels.is_empty(), "Plan::first_fit: no alternatives");
        Level::FirstFit(levels).into()
    }

    /// Parses the text form, naming `source_name` (such as `FUTURIZE_PLAN`)
    /// in the error.
    pub fn parse_from(text: &str, source_name: &str) -> Result<Plan, Error> {
        let refuse = |reason: String| Error::Plan {
            source_name: source_name.to_string(),
            text: text.to_string(),
            reason,
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(refuse("the plan is empty".into()));
        }
        let levels = trimmed
            .split('/')
            .map(|part| parse::level(part.trim()).map_err(&refuse))
            .collect::<Result<Vec<_>, _>>()?;
        // Each level may start its own pools: checked from each level down.
        (0..levels.len())
            .try_for_each(|i| parse::check_pool(&levels[i..]))
            .map_err(refuse)?;
        Ok(Plan { levels })
    }

    /// Whether every level's workers are within [`MAX_WORKERS`] (jobs within
    /// [`MAX_SLURM_JOBS`]): a plan built in code is checked when it starts,
    /// as its text would be when parsed.
    pub(crate) fn check_limits(&self, source_name: &str) -> Result<(), Error> {
        self.levels
            .iter()
            .try_for_each(parse::check_level)
            .and_then(|()| {
                (0..self.levels.len()).try_for_each(|i| parse::check_pool(&self.levels[i..]))
            })
            .map_err(|reason| Error::Plan {
                source_name: source_name.to_string(),
                text: self.to_string(),
                reason,
            })
    }
}

impl FromStr for Plan {
    type Err = Error;
    fn from_str(s: &str) -> Result<Plan, Error> {
        Plan::parse_from(s, "a plan text")
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Level::Sequential => write!(f, "sequential"),
            Level::Multithread { workers } => write!(f, "multithread:{workers}"),
            Level::Multiprocess { workers, fresh } => {
                write!(f, "multiprocess:{workers}")?;
                if *fresh {
                    f.write_str(":fresh")?;
                }
                Ok(())
            }
            Level::Cluster(c) => write!(f, "{c}"),
            Level::Slurm(s) => write!(f, "{s}"),
            Level::SlurmPool(p) => write!(f, "{p}"),
            Level::FirstFit(levels) => {
                for (i, level) in levels.iter().enumerate() {
                    if i > 0 {
                        f.write_str("|")?;
                    }
                    write!(f, "{level}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, level) in self.levels.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            write!(f, "{level}")?;
        }
        Ok(())
    }
}

impl From<Level> for Plan {
    fn from(level: Level) -> Plan {
        Plan {
            levels: vec![level],
        }
    }
}

/// Nested plans: `Plan::from([outer.into(), inner.into()])`; each element's
/// levels are appended in order. An empty list is `Sequential`.
impl<const N: usize> From<[Plan; N]> for Plan {
    fn from(plans: [Plan; N]) -> Plan {
        Plan::from(Vec::from(plans))
    }
}

impl From<Vec<Plan>> for Plan {
    fn from(plans: Vec<Plan>) -> Plan {
        let levels: Vec<Level> = plans.into_iter().flat_map(|p| p.levels).collect();
        if levels.is_empty() {
            Sequential.into()
        } else {
            Plan { levels }
        }
    }
}

/// Evaluate each future in the calling thread, at creation (R's `sequential`).
/// The default plan.
///
/// ```
/// use futurize_runtime::{Plan, Sequential};
/// assert_eq!(Plan::from(Sequential).to_string(), "sequential");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sequential;

impl From<Sequential> for Plan {
    fn from(_: Sequential) -> Plan {
        Level::Sequential.into()
    }
}

/// Evaluate futures on threads of this process (the analogue of R's
/// `multicore`).
///
/// ```
/// use futurize_runtime::{Multithread, Plan};
/// assert_eq!(Plan::from(Multithread::workers(3)).to_string(), "multithread:3");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Multithread {
    workers: usize,
}

impl Multithread {
    /// `n` worker threads.
    ///
    /// # Panics
    /// If `n` is 0, as R refuses `workers = 0`: use [`Multithread::workers_auto`]
    /// for one thread per available core.
    pub fn workers(n: usize) -> Multithread {
        assert!(
            n >= 1,
            "Multithread::workers(0): the number of workers must be at least 1; \
             use Multithread::workers_auto() for one per available core"
        );
        Multithread { workers: n }
    }

    /// One worker thread per core from [`available_cores`](crate::available_cores).
    pub fn workers_auto() -> Multithread {
        Multithread::workers(crate::cores::available_cores())
    }
}

impl From<Multithread> for Plan {
    fn from(m: Multithread) -> Plan {
        Level::Multithread { workers: m.workers }.into()
    }
}

/// Evaluate futures in worker processes of this same executable (R's
/// `multisession`; with [`fresh`](Multiprocess::fresh), `callr`).
///
/// Workers start on first need and are reused; each one exits when its
/// leader's plan is dropped or the leader ends. Captures and values travel
/// as bytes over pipes.
///
/// ```
/// use futurize_runtime::{Multiprocess, Plan};
/// assert_eq!(Plan::from(Multiprocess::workers(2)).to_string(), "multiprocess:2");
/// assert_eq!(Plan::from(Multiprocess::workers(2).fresh()).to_string(), "multiprocess:2:fresh");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Multiprocess {
    workers: usize,
    fresh: bool,
}

impl Multiprocess {
    /// `n` persistent worker processes.
    ///
    /// # Panics
    /// If `n` is 0, as R refuses `workers = 0`: use
    /// [`Multiprocess::workers_auto`] for one per available core.
    pub fn workers(n: usize) -> Multiprocess {
        assert!(
            n >= 1,
            "Multiprocess::workers(0): the number of workers must be at least 1; \
             use Multiprocess::workers_auto() for one per available core"
        );
        Multiprocess {
            workers: n,
            fresh: false,
        }
    }

    /// One worker process per core from [`available_cores`](crate::available_cores).
    pub fn workers_auto() -> Multiprocess {
        Multiprocess::workers(crate::cores::available_cores())
    }

    /// A new process for every future, at most `n` at once: memory is never
    /// shared between futures (R's `callr`), at the price of a process start
    /// per future.
    pub fn fresh(self) -> Multiprocess {
        Multiprocess {
            fresh: true,
            ..self
        }
    }
}

impl From<Slurm> for Plan {
    fn from(s: Slurm) -> Plan {
        Level::Slurm(s).into()
    }
}

impl From<SlurmPool> for Plan {
    fn from(p: SlurmPool) -> Plan {
        Level::SlurmPool(p).into()
    }
}

impl From<Cluster> for Plan {
    fn from(c: Cluster) -> Plan {
        Level::Cluster(c).into()
    }
}

impl From<Multiprocess> for Plan {
    fn from(m: Multiprocess) -> Plan {
        Level::Multiprocess {
            workers: m.workers,
            fresh: m.fresh,
        }
        .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() {
        for text in [
            "sequential",
            "multithread:4",
            "multithread:2/multithread:3",
            "multithread:2/sequential",
            "multiprocess:3",
            "multiprocess:2:fresh",
            "multiprocess:2/multithread:2",
            "cluster:n1,n1,n2",
            "cluster:me@n1:2222,n2/multiprocess:4",
            "slurm",
            "slurm:4/multiprocess:5",
            "multiprocess:2|slurm",
            "multiprocess:2|slurm:4/multithread:2",
            "slurm-pool",
            "slurm-pool:4/multiprocess:8",
            "multiprocess:2|slurm-pool:3",
        ] {
            let p: Plan = text.parse().unwrap();
            assert_eq!(p.to_string(), text);
        }
    }

    #[test]
    fn slurm_pool_forms_and_their_errors() {
        let p: Plan = "slurm-pool:4".parse().unwrap();
        assert!(matches!(p.first(), Level::SlurmPool(s) if s.max_allocations() == 4));
        let p: Plan = "slurm-pool".parse().unwrap();
        assert!(
            matches!(p.first(), Level::SlurmPool(s) if s.max_allocations() == DEFAULT_POOL_ALLOCATIONS)
        );
        for (bad, why) in [
            ("slurm-pool:0", "at least 1"),
            ("slurm-pool:1001", "at most 1000"),
            ("slurm-pool:many", "not a number"),
            (
                "slurm-pool:2/multiprocess:4096",
                "8192 workers: a pool has at most 4096",
            ),
            ("slurm_pool:4", "did you mean `slurm-pool:4`?"),
        ] {
            let e = bad.parse::<Plan>().unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn bare_multithread_uses_available_cores() {
        let p = Plan::parse_from(" Multithread ", "FUTURIZE_PLAN").unwrap();
        assert_eq!(p.first().workers(), crate::cores::available_cores());
    }

    #[test]
    fn malformed_text_names_source_text_and_forms() {
        for (text, why) in [
            ("multithread:0", "at least 1"),
            ("multithread:x", "not a number"),
            ("nosuch", "not a known plan"),
            ("", "empty"),
            ("multithread:2//sequential", "empty"),
            ("sequential:3", "no argument"),
            ("multiprocess:0", "at least 1"),
            ("multiprocess:2:stale", "not a multiprocess option"),
            ("cluster:", "needs host names"),
            ("cluster:n1,,n2", "empty"),
            ("cluster:n1:99999", "not a port"),
            ("slurm:0", "at least 1"),
            (
                "multiprocess:2|",
                "an alternative of `multiprocess:2|` is empty",
            ),
            ("|slurm", "an alternative of `|slurm` is empty"),
            (
                "multithread:99999999",
                "99999999 workers are too many: a level has at most 4096",
            ),
            ("multiprocess:18446744073709551615", "at most 4096"),
            ("multiprocess:99999999999999999999999:fresh", "at most 4096"),
            ("slurm:10001", "at most 10000"),
            ("multisession:2", "did you mean `multiprocess:2`?"),
            ("multicore", "R's `multicore` is `multithread` here"),
            ("multiproces:2", "did you mean `multiprocess:2`?"),
            ("cluster:n1;reboot", "';'"),
            ("cluster:$(id)", "'$'"),
            ("cluster:`id`", "'`'"),
            ("cluster:me;x@n1", "user name"),
        ] {
            let e = Plan::parse_from(text, "FUTURIZE_PLAN").unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, Error::Plan { .. }));
            assert!(msg.contains("FUTURIZE_PLAN"), "{msg}");
            assert!(msg.contains(&format!("`{text}`")), "{msg}");
            assert!(msg.contains(why), "{msg}");
            assert!(msg.contains("multithread[:N]"), "{msg}");
            assert!(
                msg.len() < 600 + text.len(),
                "{} characters: {msg}",
                msg.len()
            );
        }
    }

    #[test]
    fn a_plan_in_code_past_the_worker_limit_is_refused_when_checked() {
        let p = Plan::from(Multithread::workers(MAX_WORKERS + 1));
        let e = p.check_limits("plan()").unwrap_err().to_string();
        assert!(
            e.contains("plan()") && e.contains("multithread:4097"),
            "{e}"
        );
        assert!(e.contains("at most 4096"), "{e}");
        let nested = Plan::from([
            Multithread::workers(2).into(),
            Multiprocess::workers(99_999).into(),
        ]);
        assert!(nested.check_limits("plan()").is_err());
        let fits = Plan::first_fit([
            Multiprocess::workers(MAX_WORKERS).into(),
            Slurm::jobs().into(),
        ]);
        assert_eq!(fits.check_limits("plan()"), Ok(()));
    }

    #[test]
    fn nested_drops_the_first_level_and_ends_in_sequential() {
        let p = Plan::from([
            Multithread::workers(2).into(),
            Multithread::workers(3).into(),
        ]);
        assert_eq!(p.nested().to_string(), "multithread:3");
        assert_eq!(p.nested().nested().to_string(), "sequential");
    }

    #[test]
    #[should_panic(expected = "at least 1")]
    fn zero_workers_is_refused() {
        let _ = Multithread::workers(0);
    }
}
