//! Multithread: a fixed pool of worker threads in this process.
//!
//! Admission keeps the R semantics: creating a future when all `n` workers
//! are busy blocks until one finishes. A worker counts as busy from admission
//! until its body returns (not until the value is collected), so finished
//! futures never hold a worker. When the pool is dropped (the plan changed
//! and its last future is gone), the job channel closes and the threads end.

use super::{Backend, ResultSlot, Submitted, Task};
use crate::active::ActivePlan;
use crate::relay::Output;
use crate::{Error, execute};
use crossbeam_channel::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};

struct Job {
    task: Task,
    slot: Arc<ResultSlot>,
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

pub(crate) struct ThreadPool {
    jobs: Sender<Job>,
    admission: Arc<Admission>,
}

impl ThreadPool {
    pub(crate) fn start(workers: usize, nested: Arc<ActivePlan>) -> Result<ThreadPool, Error> {
        let (jobs, receiver) = crossbeam_channel::unbounded::<Job>();
        let admission = Arc::new(Admission {
            busy: Mutex::new(0),
            freed: Condvar::new(),
            limit: workers,
        });
        for i in 0..workers {
            let receiver = receiver.clone();
            let admission = admission.clone();
            let nested = nested.clone();
            std::thread::Builder::new()
                .name(format!("futurize-worker-{i}"))
                .spawn(move || work(receiver, admission, nested))
                .map_err(|e| Error::Launch {
                    what: format!("worker thread {i} of {workers}"),
                    reason: e.to_string(),
                })?;
        }
        Ok(ThreadPool { jobs, admission })
    }
}

fn work(jobs: Receiver<Job>, admission: Arc<Admission>, nested: Arc<ActivePlan>) {
    for Job { task, slot } in jobs {
        let (result, output) = if slot.is_cancelled() {
            (Err(Error::Cancelled { label: None }), Output::default())
        } else {
            execute::run(
                task.entry,
                &task.captures,
                &nested,
                task.stream,
                task.capture_output,
                task.timeout.as_ref(),
            )
        };
        drop(task);
        slot.set_output(output);
        // Free the worker before handing over the value, so that whoever
        // collects it already sees the worker free.
        admission.release();
        slot.fill(result);
    }
}

impl Backend for ThreadPool {
    fn submit(&self, task: Task) -> Submitted {
        self.admission.admit();
        let slot = ResultSlot::new();
        let job = Job {
            task,
            slot: slot.clone(),
        };
        if self.jobs.send(job).is_err() {
            self.admission.release();
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
        self.admission.free()
    }
}
