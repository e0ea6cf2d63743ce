//! Worker pools on Slurm (`slurm-pool:N`): the [`AllocationLauncher`]
//! starts workers inside batch jobs that only hold an allocation, through
//! one host agent per allocation started as a step of it (`srun
//! --jobid=<job> --overlap`), whose stdio is the connection, as a
//! cluster's host agent inside `salloc`. The pool, its readers and dispatch
//! treat these workers as any other.
//!
//! Elastic, by three rules kept by a watching thread (Slurm is asked every
//! 100 ms while an allocation is pending, every 500 ms otherwise):
//! - **grow**: a worker is wanted and none is free (the pool starts workers
//!   on threads of their own: `Launcher::starts_slowly`) → a seat in a
//!   running allocation, else in a pending one, else a new allocation, up
//!   to N;
//! - **give back**: the pool ends workers idle past the idle time; an
//!   allocation with no worker left is given back (its agent's link closes,
//!   its holding loop ends); a pending allocation nobody waits for any more
//!   is cancelled;
//! - **drain**: a margin before its time limit an allocation takes no more
//!   work (its workers are retired: each ends when next idle) and a
//!   replacement is asked for while it still runs work.
//!
//! An allocation that ends under its workers (cancelled, preempted, a node
//! lost) ends their links: their tasks are `WorkerDied` naming the node and
//! the job, and `retries` run them on another allocation.

use super::allocation_watch::watch;
use super::cluster::Seat;
use super::connection::{Connection, RemoteProcess};
use super::link::{Demand, Launcher, Link};
use crate::Error;
use crate::backend::slurm::allocation::{self, Holders};
use crate::plan::{Cluster, Host, SlurmPool, Via};
use crate::sync::lock;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How lately a caller must have waited for a worker for an allocation that
/// starts to be used.
const WANTED_LATELY: Duration = Duration::from_millis(250);

/// How many allocations one worker's start tries before its error stands.
const LAUNCH_TRIES: usize = 3;

/// How long a holding job waits for its agent before it ends by itself.
pub(super) const FIRST_CONTACT: Duration = Duration::from_secs(60);

/// The default drain margin: a quarter of the time limit, at most this.
const LONGEST_DEFAULT_DRAIN: Duration = Duration::from_secs(300);

/// Starts workers inside a pool's Slurm allocations.
pub(crate) struct AllocationLauncher {
    spec: SlurmPool,
    /// Workers per allocation.
    per: usize,
    shared: Arc<Shared>,
    next_worker: AtomicU32,
}

pub(super) struct Shared {
    pub(super) holders: Holders,
    /// What every allocation's connection is opened with (its job set per
    /// allocation).
    cluster: Cluster,
    pub(super) limit: usize,
    drain: Option<Duration>,
    pub(super) allocations: Mutex<Vec<Allocation>>,
    pub(super) changed: Condvar,
    /// The pool's demand for workers.
    demand: OnceLock<Arc<Demand>>,
    /// When some caller last waited.
    pub(super) last_wanted: Mutex<Instant>,
    watching: AtomicBool,
}

/// One allocation, as the launcher keeps it.
pub(super) struct Allocation {
    pub(super) job: String,
    pid_file: PathBuf,
    /// Workers in it, running or starting (each holds a [`Seat`]).
    pub(super) seats: Arc<AtomicUsize>,
    /// Set when it takes no more work: draining, given back, or ended.
    pub(super) retired: Arc<AtomicBool>,
    pub(super) phase: Phase,
    connection: Arc<Mutex<Option<Arc<Connection>>>>,
    pub(super) asked: Instant,
}

impl Allocation {
    /// Ends it for the pool: retired, its connection dropped (its agent
    /// sees its link close). Whether an agent ever came.
    pub(super) fn end(&mut self, why: impl Into<String>) -> bool {
        self.retired.store(true, Ordering::Release);
        let reached = lock(&self.connection).take().is_some();
        self.phase = Phase::Ended(why.into());
        reached
    }

    pub(super) fn takes_work(&self) -> bool {
        !self.retired.load(Ordering::Acquire) && !matches!(self.phase, Phase::Ended(_))
    }

    /// A holding job just submitted: pending, no seat taken.
    pub(super) fn asked(held: crate::backend::slurm::allocation::Held) -> Allocation {
        Allocation {
            job: held.job,
            pid_file: held.pid_file,
            seats: Arc::new(AtomicUsize::new(0)),
            retired: Arc::new(AtomicBool::new(false)),
            phase: Phase::Pending,
            connection: Arc::new(Mutex::new(None)),
            asked: Instant::now(),
        }
    }
}

#[derive(Clone, Debug)]
pub(super) enum Phase {
    Pending,
    Running {
        node: String,
        /// When Slurm ends it, where its time is limited, and how long
        /// before that it stops taking work.
        deadline: Option<(Instant, Duration)>,
        /// Since when it has had no worker.
        empty_since: Option<Instant>,
    },
    Ended(String),
}

/// A seat reserved in an allocation, for one worker being started.
struct Reserved {
    job: String,
    seat: Seat,
    retired: Arc<AtomicBool>,
    connection: Arc<Mutex<Option<Arc<Connection>>>>,
    pid_file: PathBuf,
}

/// How many workers each allocation of a pool runs: a nested
/// `multiprocess:W` level's W (which the pool then takes the place of),
/// else one.
pub(crate) fn workers_per_allocation(nested: &crate::Plan) -> usize {
    match nested.first() {
        crate::Level::Multiprocess {
            workers,
            fresh: false,
        } => *workers,
        _ => 1,
    }
}

impl AllocationLauncher {
    /// A launcher for `spec`, each allocation running `per` workers whose
    /// bodies use `threads` threads each (for its cpus).
    pub(crate) fn new(
        spec: &SlurmPool,
        per: usize,
        threads: usize,
    ) -> Result<AllocationLauncher, Error> {
        let cpus = u32::try_from(per.saturating_mul(threads.max(1))).unwrap_or(u32::MAX);
        let holders = Holders::new(spec, cpus)?;
        let mut cluster = Cluster::of(vec![Host::parse("localhost").expect("a host name")]);
        cluster.env = spec.env.clone();
        cluster.via = Via::Srun;
        cluster.launch_timeout = spec.launch_timeout;
        Ok(AllocationLauncher {
            spec: spec.clone(),
            per: per.max(1),
            shared: Arc::new(Shared {
                holders,
                cluster,
                limit: spec.max_allocations(),
                drain: spec.drain,
                allocations: Mutex::new(Vec::new()),
                changed: Condvar::new(),
                demand: OnceLock::new(),
                last_wanted: Mutex::new(Instant::now()),
                watching: AtomicBool::new(false),
            }),
            next_worker: AtomicU32::new(1),
        })
    }

    /// A seat in a running allocation, else a pending one, else a new
    /// allocation.
    fn reserve(&self) -> Result<Reserved, Error> {
        let mut list = lock(&self.shared.allocations);
        let open = |a: &&mut Allocation, running: bool| {
            !a.retired.load(Ordering::Acquire)
                && a.seats.load(Ordering::Acquire) < self.per
                && matches!(a.phase, Phase::Running { .. }) == running
                && !matches!(a.phase, Phase::Ended(_))
        };
        let index = match list.iter_mut().position(|a| open(&a, true)) {
            Some(i) => i,
            None => match list.iter_mut().position(|a| open(&a, false)) {
                Some(i) => i,
                None => {
                    let held = list.iter().filter(|a| a.takes_work()).count();
                    if held >= self.shared.limit {
                        return Err(Error::Launch {
                            what: format!("a worker of {}", self.spec),
                            reason: format!(
                                "all {} allocations run as many workers as they hold",
                                self.shared.limit
                            ),
                        });
                    }
                    list.push(Allocation::asked(
                        self.shared.holders.submit(FIRST_CONTACT)?,
                    ));
                    self.shared.changed.notify_all();
                    list.len() - 1
                }
            },
        };
        let a = &list[index];
        a.seats.fetch_add(1, Ordering::AcqRel);
        Ok(Reserved {
            job: a.job.clone(),
            seat: Seat(a.seats.clone()),
            retired: a.retired.clone(),
            connection: a.connection.clone(),
            pid_file: a.pid_file.clone(),
        })
    }

    /// Waits until `job` runs: the node it runs on.
    fn running_node(&self, job: &str) -> Result<String, Error> {
        let mut list = lock(&self.shared.allocations);
        loop {
            match list.iter().find(|a| a.job == job).map(|a| &a.phase) {
                // A burst that one worker served may have asked for more
                // allocations than it needed: one that starts when no caller
                // has waited lately is not used (with no worker it is given
                // back, and cancelled, at once).
                Some(Phase::Running { .. }) if !self.shared.wanted_lately() => {
                    return Err(self.lost(job, "no longer needed when it started"));
                }
                Some(Phase::Running { node, .. }) => return Ok(node.clone()),
                Some(Phase::Ended(why)) => {
                    return Err(self.lost(job, why));
                }
                None => return Err(self.lost(job, "the pool no longer keeps it")),
                Some(Phase::Pending) => {}
            }
            list = self
                .shared
                .changed
                .wait_timeout(list, Duration::from_secs(1))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn lost(&self, job: &str, why: &str) -> Error {
        Error::Launch {
            what: format!("a worker of {} in Slurm job {job}", self.spec),
            reason: why.to_string(),
        }
    }

    /// The connection to `reserved`'s allocation on `node`, opened on first
    /// need; an allocation that cannot be reached is given up.
    fn connection(&self, reserved: &Reserved, node: &str) -> Result<Arc<Connection>, Error> {
        let mut slot = lock(&reserved.connection);
        if let Some(c) = slot.as_ref().filter(|c| c.is_alive()) {
            return Ok(c.clone());
        }
        if slot.is_some() {
            // Its agent is gone (the job was cancelled or preempted under
            // it): the allocation is lost to the pool.
            slot.take();
            drop(slot);
            self.shared
                .give_up(&reserved.job, "its agent's connection ended");
            return Err(self.lost(&reserved.job, "its agent's connection ended"));
        }
        let mut spec = self.shared.cluster.clone();
        spec.in_job = Some((reserved.job.clone(), reserved.pid_file.clone()));
        let host = Host::parse(node).map_err(|e| self.lost(&reserved.job, &e))?;
        match Connection::open(&spec, &host) {
            Ok(c) => {
                let c = Arc::new(c);
                *slot = Some(c.clone());
                Ok(c)
            }
            Err(why) => {
                drop(slot);
                self.shared.give_up(&reserved.job, &why);
                Err(self.lost(
                    &reserved.job,
                    &format!("{why}; {}", self.shared.holders.log_tail(&reserved.job)),
                ))
            }
        }
    }

    fn start_watching(&self) {
        if self.shared.watching.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(&self.shared);
        let _ = std::thread::Builder::new()
            .name("futurize-pool-watch".into())
            .spawn(move || watch(weak));
    }
}

impl Launcher for AllocationLauncher {
    fn capacity(&self) -> crate::plan::Capacity {
        crate::backend::slurm::capacity(&self.spec.jobs)
    }

    fn starts_slowly(&self) -> bool {
        true
    }

    fn idle_limit(&self) -> Option<Duration> {
        Some(self.spec.idle_time())
    }

    fn attach(&self, demand: Arc<Demand>) {
        let _ = self.shared.demand.set(demand);
    }

    /// A worker in an allocation; an allocation lost on the way (ended
    /// before it ran, its agent gone) is given up and another tried, a few
    /// times.
    fn launch(&self) -> Result<Link, Error> {
        self.start_watching();
        let mut tries = 0;
        loop {
            tries += 1;
            match self.launch_once() {
                Err(e) if tries < LAUNCH_TRIES && self.shared.wanted() => {
                    log::info!("futurize: {e}; trying another allocation");
                }
                done => return done,
            }
        }
    }
}

impl AllocationLauncher {
    fn launch_once(&self) -> Result<Link, Error> {
        let reserved = self.reserve()?;
        let node = self.running_node(&reserved.job)?;
        let connection = self.connection(&reserved, &node)?;
        let worker = self.next_worker.fetch_add(1, Ordering::Relaxed);
        let (link, worker, connection) = match connection.start_worker(worker, &self.shared.cluster)
        {
            Ok(started) => started,
            Err(why) => {
                if !connection.is_alive() {
                    self.shared.give_up(&reserved.job, &why);
                }
                return Err(self.lost(&reserved.job, &why));
            }
        };
        Ok(RemoteProcess::seated(
            link,
            connection,
            worker,
            format!("{node} (Slurm job {})", reserved.job),
            reserved.seat,
            Some(reserved.retired),
            self.spec.launch_timeout,
        ))
    }
}

impl Drop for AllocationLauncher {
    /// The pool is done: every allocation is given back (a running one's
    /// agent sees its link close; a pending one is cancelled).
    fn drop(&mut self) {
        let mut list = lock(&self.shared.allocations);
        let pending: Vec<String> = list
            .iter()
            .filter(|a| matches!(a.phase, Phase::Pending))
            .map(|a| a.job.clone())
            .collect();
        for a in list.iter_mut() {
            a.end("the pool ended");
        }
        allocation::cancel(&pending);
    }
}

impl Shared {
    /// Ends `job`'s allocation for the pool: cancelled, its workers retired.
    fn give_up(&self, job: &str, why: &str) {
        let mut list = lock(&self.allocations);
        if let Some(a) = list.iter_mut().find(|a| a.job == job) {
            a.end(why);
        }
        self.changed.notify_all();
        drop(list);
        allocation::cancel(&[job.to_string()]);
    }

    pub(super) fn wanted(&self) -> bool {
        self.demand.get().is_some_and(|d| d.wanted())
    }

    /// Whether a caller waits for a worker now or had to lately.
    fn wanted_lately(&self) -> bool {
        self.demand
            .get()
            .is_some_and(|d| d.wanted_within(WANTED_LATELY))
    }

    /// The drain margin of an allocation with `left` of its time.
    pub(super) fn margin(&self, left: Duration) -> Duration {
        self.drain
            .unwrap_or_else(|| (left / 4).min(LONGEST_DEFAULT_DRAIN))
    }
}
