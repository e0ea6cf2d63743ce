//! Multithread: a fixed pool of worker threads in this process.
//!
//! Admission keeps the R semantics: creating a future when all `n` workers
//! are busy blocks until one finishes. A worker counts as busy from admission
//! until its body returns (not until the value is collected), so finished
//! futures never hold a worker. When the pool is dropped (the plan changed
//! and its last future is gone), the job channel closes and the threads end.
//!
//! A thread cannot be interrupted. When a running future is given up
//! (cancelled, dropped, or past its `timeout`), its thread is retired: a new
//! thread takes its place at once, and the old one ends when its body
//! returns, its value discarded.

use super::{Backend, ResultSlot, Submitted, Task};
use crate::active::ActivePlan;
use crate::relay::Output;
use crate::{Error, execute};
use crossbeam_channel::{Receiver, Sender};
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

struct Job {
    task: Task,
    slot: Arc<ResultSlot>,
    phase: Arc<Mutex<Phase>>,
}

/// Counts busy workers; `admit` blocks while all are busy.
struct Admission {
    busy: Mutex<usize>,
    freed: Condvar,
    limit: usize,
}

impl Admission {
    fn admit(&self) {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while *busy >= self.limit {
            busy = self.freed.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        *busy += 1;
    }

    fn release(&self) {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        *busy -= 1;
        self.freed.notify_one();
    }

    fn free(&self) -> usize {
        self.limit - *self.busy.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What every worker thread shares, and what starting one more needs.
struct Shared {
    jobs: Receiver<Job>,
    admission: Admission,
    nested: Arc<ActivePlan>,
    started: AtomicUsize,
}

pub(crate) struct ThreadPool {
    jobs: Sender<Job>,
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn spawn_thread(shared: &Arc<Shared>) -> Result<(), Error> {
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
    pub(crate) fn start(workers: usize, nested: Arc<ActivePlan>) -> Result<ThreadPool, Error> {
        let (jobs, receiver) = crossbeam_channel::unbounded::<Job>();
        let shared = Arc::new(Shared {
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

fn work(shared: Arc<Shared>) {
    for Job { task, slot, phase } in shared.jobs.iter() {
        let (result, output) = {
            let mut p = lock(&phase);
            if *p == Phase::Queued && !slot.is_cancelled() {
                *p = Phase::Running;
                drop(p);
                execute::run(
                    task.entry,
                    &task.captures,
                    &shared.nested,
                    task.stream,
                    Some(task.capture_output),
                    task.timeout.as_ref(),
                )
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
    fn submit(&self, task: Task) -> Submitted {
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
        let job = Job {
            task,
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

    fn free_workers(&self) -> usize {
        self.shared.admission.free()
    }
}
