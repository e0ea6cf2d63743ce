//! Workers started aside, for a launcher whose starts may wait long (a
//! Slurm pool's allocation: `Launcher::starts_slowly`). A caller that finds
//! no idle worker starts one on a thread of its own and takes whichever
//! worker is idle first, a new one or one that finished meanwhile; the pool
//! tells the launcher how many callers wait (`Demand`), and ends workers
//! idle past the launcher's limit or whose host takes no more work.

use super::{Pool, Worker, spawn_worker, take_idle};
use crate::Error;
use crate::sync::lock;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// How long after a failed start in the background the next is tried while
/// other workers serve.
const RETRY_ASIDE_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

impl Pool {
    /// An idle worker for a launcher whose workers may take long to start:
    /// each worker starts on a thread of its own, and the caller takes
    /// whichever worker is free first, a new one or one that finished its
    /// work meanwhile.
    pub(super) fn acquire_started_aside(self: &Arc<Self>) -> Result<Arc<Worker>, Error> {
        let mut state = lock(&self.state);
        self.demand.waiting.fetch_add(1, Ordering::AcqRel);
        let waited = loop {
            if let Some(w) = take_idle(&mut state) {
                break Ok(w);
            }
            let waiting = self.demand.waiting.load(Ordering::Acquire);
            if waiting > state.starting && state.live < self.size && state.failed.is_none() {
                state.live += 1;
                state.starting += 1;
                let pool = self.clone();
                let started = std::thread::Builder::new()
                    .name("futurize-start".into())
                    .spawn(move || pool.start_aside());
                if let Err(e) = started {
                    state.live -= 1;
                    state.starting -= 1;
                    break Err(super::link::launch_error(e));
                }
                continue;
            }
            if state.live == 0
                && let Some(e) = &state.failed
            {
                let e = e.clone();
                break Err(e);
            }
            self.demand.waited();
            state = self
                .freed
                .wait_timeout(state, std::time::Duration::from_millis(500))
                .unwrap_or_else(|p| p.into_inner())
                .0;
            // A failure is told to the callers waiting then; later ones try
            // again.
            if state.failed.is_some() && state.live > 0 {
                state.failed = None;
            }
        };
        self.demand.waiting.fetch_sub(1, Ordering::AcqRel);
        if self.demand.waiting.load(Ordering::Acquire) == 0 {
            state.failed = None;
        }
        waited
    }

    /// Starts one worker for [`acquire_started_aside`](Pool::acquire_started_aside).
    fn start_aside(self: Arc<Self>) {
        let started = spawn_worker(&self);
        let mut state = lock(&self.state);
        match started {
            // The pool ended meanwhile: so does the worker.
            Ok(w) if state.closed => {
                lock(&w.input).take();
            }
            Ok(w) => {
                *lock(&w.idle_since) = std::time::Instant::now();
                state.idle.push(w);
            }
            Err(e) => {
                state.live -= 1;
                // Nobody waits: the launcher gave up a start no longer
                // wanted.
                let wanted = self.demand.waiting.load(Ordering::Acquire) > 0;
                if wanted && state.live > 0 {
                    // Others serve: try again later, not at once.
                    log::warn!("futurize: {e}; going on with the other workers");
                    drop(state);
                    std::thread::sleep(RETRY_ASIDE_AFTER);
                    state = lock(&self.state);
                } else if wanted {
                    state.failed = Some(e);
                }
            }
        }
        state.starting -= 1;
        self.freed.notify_all();
    }

    /// Ends the idle workers idle past the launcher's limit, and those whose
    /// host takes no more work.
    pub(super) fn end_idle(&self) {
        let limit = self.launcher.idle_limit();
        let mut state = lock(&self.state);
        state.idle.retain(|w| {
            let past = limit.is_some_and(|l| lock(&w.idle_since).elapsed() >= l);
            let keep = !past && !lock(&w.process).retired();
            if !keep {
                lock(&w.input).take();
            }
            keep
        });
    }
}
