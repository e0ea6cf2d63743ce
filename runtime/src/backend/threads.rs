//! Multithread: a fixed pool of worker threads in this process.
//!
//! Admission keeps the R semantics: creating a future when all `n` workers
//! are busy blocks until one finishes. A `foreach!` call takes its workers
//! from the same admission: the calling thread takes one (blocking while all
//! are busy) and runs chunks itself, and each further free worker joins the
//! call on a pool thread. So futures and loops together never run more than
//! `n` bodies at once, as R's multicore never runs more than its workers. A worker counts as busy from admission
//! until its body returns (not until the value is collected), so finished
//! futures never hold a worker. When the pool is dropped (the plan changed
//! and its last future is gone), the job channel closes and the threads end.
//!
//! A thread cannot be interrupted. When a running future is given up
//! (cancelled, dropped, or past its `timeout`), its thread is retired: a new
//! thread takes its place at once, and the old one ends when its body
//! returns, its value discarded.

use super::{
    Backend, ChunkWorkers, Entry, LendThreads, ResultSlot, Submitted, Work, in_process_only,
};
use crate::Error;
use crate::body::{self, NestedPlan};
use crate::protocol::Output;
use crate::sync::lock;
use crossbeam_channel::{Receiver, Sender};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Where a job is in its life; decides who frees its worker.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Queued,
    Running,
    /// Given up while running: a replacement thread was started and the
    /// admission slot freed; the thread ends after the body.
    Retired,
    Done,
}

enum Job {
    /// A future.
    Future {
        task: Box<Work>,
        slot: Arc<ResultSlot>,
        phase: Arc<Mutex<Phase>>,
    },
    /// Join a `foreach!` call: run its chunks until none is left.
    Chunks(JoinCall),
}

/// A `foreach!` call that a pool thread joins, and the count of its helpers
/// still working.
struct JoinCall {
    /// What a helper runs: the call's chunks, borrowed from the calling
    /// thread's stack.
    ///
    /// Its lifetime is erased: [`ThreadPool::lend`] does not return (nor
    /// unwind) before it has closed `working` and every helper that joined
    /// has counted down; a helper that comes later does not touch `work`.
    work: *const (dyn Fn() + Sync + 'static),
    working: Arc<Working>,
}

// SAFETY: the work is `Sync`, so running it from another thread is sound;
// the pointer is only dereferenced while it is alive (see `work`).
unsafe impl Send for JoinCall {}

/// The helpers of one call: how many joined, how many still work, and
/// whether the call still takes helpers.
struct Working {
    state: Mutex<Helpers>,
    zero: Condvar,
}

#[derive(Default)]
struct Helpers {
    joined: usize,
    running: usize,
    /// The caller has finished its own share: a helper that wakes up only
    /// now has nothing to join (its admission slot was freed by the caller).
    closed: bool,
}

impl Working {
    /// A helper starts; false when the call no longer takes helpers.
    fn join(&self) -> bool {
        let mut state = lock(&self.state);
        if state.closed {
            return false;
        }
        state.joined += 1;
        state.running += 1;
        true
    }

    fn done(&self) {
        let mut state = lock(&self.state);
        state.running -= 1;
        if state.running == 0 {
            self.zero.notify_all();
        }
    }

    /// Takes no more helpers and waits for those that joined; returns how
    /// many of the `sent` never joined.
    fn close(&self, sent: usize) -> usize {
        let mut state = lock(&self.state);
        state.closed = true;
        let state = self
            .zero
            .wait_while(state, |s| s.running > 0)
            .unwrap_or_else(|p| p.into_inner());
        sent - state.joined
    }
}

/// Closes the call's helpers when dropped: on return and on unwind alike,
/// so the borrowed call outlives every use of it. Frees the admission
/// slots of helpers that never joined.
struct WaitForHelpers<'a> {
    working: &'a Working,
    sent: usize,
    admission: &'a Admission,
}

impl Drop for WaitForHelpers<'_> {
    fn drop(&mut self) {
        for _ in 0..self.working.close(self.sent) {
            self.admission.release();
        }
    }
}

/// Counts busy workers; `admit` blocks while all are busy.
struct Admission {
    busy: Mutex<usize>,
    freed: Condvar,
    limit: usize,
}

impl Admission {
    fn admit(&self) {
        let mut busy = lock(&self.busy);
        while *busy >= self.limit {
            busy = self.freed.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        *busy += 1;
    }

    /// Takes a worker if one is free now, without waiting.
    fn try_admit(&self) -> bool {
        let mut busy = lock(&self.busy);
        if *busy < self.limit {
            *busy += 1;
            true
        } else {
            false
        }
    }

    fn release(&self) {
        let mut busy = lock(&self.busy);
        *busy -= 1;
        self.freed.notify_one();
    }

    fn free(&self) -> usize {
        self.limit - *lock(&self.busy)
    }
}

/// What every worker thread shares, and what starting one more needs.
struct Threads {
    jobs: Receiver<Job>,
    admission: Admission,
    nested: NestedPlan,
    started: AtomicUsize,
}

pub(crate) struct ThreadPool {
    jobs: Sender<Job>,
    shared: Arc<Threads>,
}

fn spawn_thread(shared: &Arc<Threads>) -> Result<(), Error> {
    let i = shared.started.fetch_add(1, Ordering::Relaxed);
    let for_thread = shared.clone();
    std::thread::Builder::new()
        .name(format!("futurize-worker-{i}"))
        .spawn(move || work(for_thread))
        .map(|_| ())
        .map_err(|e| Error::Launch {
            what: format!("worker thread {i}"),
            reason: e.to_string(),
        })
}

impl ThreadPool {
    pub(crate) fn start(workers: usize, nested: NestedPlan) -> Result<ThreadPool, Error> {
        let (jobs, receiver) = crossbeam_channel::unbounded::<Job>();
        let shared = Arc::new(Threads {
            jobs: receiver,
            admission: Admission {
                busy: Mutex::new(0),
                freed: Condvar::new(),
                limit: workers,
            },
            nested,
            started: AtomicUsize::new(0),
        });
        for _ in 0..workers {
            spawn_thread(&shared)?;
        }
        Ok(ThreadPool { jobs, shared })
    }
}

fn work(shared: Arc<Threads>) {
    for job in shared.jobs.iter() {
        let (task, slot, phase) = match job {
            Job::Future { task, slot, phase } => (task, slot, phase),
            Job::Chunks(join) => {
                if !join.working.join() {
                    // The caller finished without us and freed our slot.
                    continue;
                }
                // SAFETY: this helper joined before the call closed, so the
                // calling thread waits in `lend` until `working` counts it
                // down: the call is alive.
                let work = unsafe { &*join.work };
                // Elements catch their own panics; this keeps the thread and
                // the count right should the call's own code panic.
                let _ = std::panic::catch_unwind(AssertUnwindSafe(|| shared.nested.run(work)));
                shared.admission.release();
                join.working.done();
                continue;
            }
        };
        let (result, output) = {
            let mut p = lock(&phase);
            if *p == Phase::Queued && !slot.is_cancelled() {
                *p = Phase::Running;
                drop(p);
                let started = std::time::Instant::now();
                let ran = match task.entry {
                    Entry::Future(entry) => {
                        body::run(entry, &task.payload, &shared.nested, &task.settings, true)
                    }
                    Entry::Chunk(_) => (Err(in_process_only()), Output::default()),
                };
                crate::trace::span(
                    "future",
                    crate::trace::this_thread(),
                    started,
                    task.settings
                        .label
                        .iter()
                        .map(|l| ("label", l.clone()))
                        .collect(),
                );
                ran
            } else {
                (Err(Error::Cancelled { label: None }), Output::default())
            }
        };
        drop(task);
        let retired = {
            let mut p = lock(&phase);
            let retired = *p == Phase::Retired;
            *p = Phase::Done;
            retired
        };
        slot.set_output(output);
        if retired {
            // Our place was given to a new thread already.
            slot.fill(result);
            return;
        }
        // Free the worker before handing over the value, so that whoever
        // collects it already sees the worker free.
        shared.admission.release();
        slot.fill(result);
    }
}

impl Backend for ThreadPool {
    fn submit(&self, task: Work) -> Submitted {
        self.shared.admission.admit();
        let slot = ResultSlot::new();
        let phase = Arc::new(Mutex::new(Phase::Queued));
        let (shared, job_phase) = (Arc::downgrade(&self.shared), phase.clone());
        slot.on_cancel(Box::new(move || {
            let mut p = lock(&job_phase);
            if *p != Phase::Running {
                return;
            }
            let Some(shared) = shared.upgrade() else {
                return;
            };
            // Only a thread that has a successor is retired; if none can be
            // started, the old one serves on once its body returns.
            if spawn_thread(&shared).is_ok() {
                *p = Phase::Retired;
                drop(p);
                shared.admission.release();
            }
        }));
        let job = Job::Future {
            task: Box::new(task),
            slot: slot.clone(),
            phase,
        };
        if self.jobs.send(job).is_err() {
            self.shared.admission.release();
            return Submitted::Ready(
                Err(Error::Launch {
                    what: "a future on the thread pool".into(),
                    reason: "the pool's threads have ended".into(),
                }),
                Output::default(),
            );
        }
        Submitted::Running(slot)
    }

    fn chunk_workers(&self) -> ChunkWorkers<'_> {
        ChunkWorkers::Threads(self)
    }

    fn free_workers(&self) -> usize {
        self.shared.admission.free()
    }

    fn capacity(&self) -> crate::plan::Capacity {
        super::this_machine(format!(
            "multithread:{} (this machine)",
            self.shared.admission.limit
        ))
    }
}

impl LendThreads for ThreadPool {
    fn lend(&self, plan: &mut dyn FnMut(usize) -> usize, work: &(dyn Fn() + Sync)) {
        let admission = &self.shared.admission;
        // The calling thread is one of the workers; the others free now join.
        admission.admit();
        let mut helpers = 0;
        while helpers + 1 < admission.limit && admission.try_admit() {
            helpers += 1;
        }
        let useful = plan(helpers + 1);
        while helpers + 1 > useful.max(1) {
            helpers -= 1;
            admission.release();
        }
        let working = Arc::new(Working {
            state: Mutex::new(Helpers::default()),
            zero: Condvar::new(),
        });
        let mut waiter = WaitForHelpers {
            working: &working,
            sent: 0,
            admission,
        };
        // SAFETY: only the lifetime is erased; `waiter` keeps this function
        // from returning or unwinding past `work` before the call is closed
        // and every helper that joined has counted down (see
        // `JoinCall::work`).
        let erased: *const (dyn Fn() + Sync + 'static) = unsafe {
            std::mem::transmute::<*const (dyn Fn() + Sync + '_), *const (dyn Fn() + Sync + 'static)>(
                work,
            )
        };
        for _ in 0..helpers {
            let join = JoinCall {
                work: erased,
                working: working.clone(),
            };
            if self.jobs.send(Job::Chunks(join)).is_err() {
                // The threads have ended (cannot happen while the pool is
                // alive); the caller does the work alone.
                admission.release();
            } else {
                waiter.sent += 1;
            }
        }
        let own = std::panic::catch_unwind(AssertUnwindSafe(|| self.shared.nested.run(work)));
        admission.release();
        drop(waiter);
        if let Err(payload) = own {
            std::panic::resume_unwind(payload);
        }
    }
}
