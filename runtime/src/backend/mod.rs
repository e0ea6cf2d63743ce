//! Backends: the places futures run. One file per kind behind the one
//! internal [`Backend`] trait, so the `Future` handle never knows which
//! backend runs it (the shape of crossbeam-channel's flavors).

mod processes;
mod sequential;
mod threads;

use crate::active::ActivePlan;
use crate::capture::EntryFn;
use crate::each::ChunkFn;
use crate::execute::TimeLimit;
use crate::progress::Progress;
use crate::relay::Output;
use crate::rng::Streams;
use crate::{Error, Level};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

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
}

/// Where a submitted future's value will appear.
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

/// One chunk of a `foreach!` call for a worker process.
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
    /// `stdout = true`: capture what the elements print.
    pub(crate) capture_output: bool,
    /// `timeout = "..."`, per element.
    pub(crate) timeout: Option<TimeLimit>,
    /// The call's bar and what this chunk has reported to it.
    pub(crate) progress: Option<Arc<ChunkProgress>>,
}

/// A chunk's share of its call's progress bar: the elements it reported
/// while running, so that its end adds only the rest.
pub(crate) struct ChunkProgress {
    pub(crate) bar: Arc<Progress>,
    pub(crate) reported: std::sync::atomic::AtomicU64,
}

/// A backend: something that runs tasks.
pub(crate) trait Backend: Send + Sync {
    /// Starts `task`, blocking while every worker is busy (R semantics).
    fn submit(&self, task: Task) -> Submitted;
    /// Starts a chunk of a map on a worker process; only process backends
    /// take chunks (the map engine runs in-process plans itself).
    fn submit_chunk(&self, _chunk: ChunkTask) -> Submitted {
        Submitted::Ready(
            Err(Error::Protocol(
                "this backend runs map chunks in process, not as tasks".into(),
            )),
            Output::default(),
        )
    }
    /// Workers that are idle now.
    fn free_workers(&self) -> usize;
}

/// Bytes of captures and elements sent to worker processes so far.
pub(crate) fn bytes_sent() -> u64 {
    processes::BYTES_SENT.load(std::sync::atomic::Ordering::Relaxed)
}

/// Starts the backend of one plan level; `nested` is what its futures see as
/// their plan.
pub(crate) fn start(level: &Level, nested: Arc<ActivePlan>) -> Result<Arc<dyn Backend>, Error> {
    Ok(match level {
        Level::Sequential => Arc::new(sequential::SequentialBackend::new(nested)),
        Level::Multithread { workers } => Arc::new(threads::ThreadPool::start(*workers, nested)?),
        Level::Multiprocess { workers, fresh } => Arc::new(processes::ProcessPool::start(
            *workers,
            *fresh,
            nested.plan(),
        )?),
    })
}

/// The one-shot meeting point of a running future and its owner.
pub(crate) struct ResultSlot {
    value: Mutex<Option<Result<Vec<u8>, Error>>>,
    /// What the body printed, set before `value`.
    output: Mutex<Output>,
    /// Set once `value` holds the result, for waiters that spin.
    ready: AtomicBool,
    filled: Condvar,
    cancelled: AtomicBool,
    on_cancel: Mutex<Option<CancelHook>>,
}

/// What a backend does to stop a running future when it is cancelled.
pub(crate) type CancelHook = Box<dyn FnOnce() + Send>;

impl ResultSlot {
    pub(crate) fn new() -> Arc<ResultSlot> {
        Arc::new(ResultSlot {
            value: Mutex::new(None),
            output: Mutex::new(Output::default()),
            ready: AtomicBool::new(false),
            filled: Condvar::new(),
            cancelled: AtomicBool::new(false),
            on_cancel: Mutex::new(None),
        })
    }

    pub(crate) fn fill(&self, result: Result<Vec<u8>, Error>) {
        let mut v = self.value.lock().unwrap_or_else(|p| p.into_inner());
        if v.is_none() {
            *v = Some(result);
        }
        self.ready.store(true, Ordering::Release);
        self.filled.notify_all();
    }

    /// Spins briefly for the result before a waiter goes to sleep: a round
    /// trip to a worker often ends within microseconds, and waking a sleeping
    /// thread costs more than that on small machines.
    fn spin_until_ready(&self) {
        const SPIN: Duration = Duration::from_micros(50);
        let start = std::time::Instant::now();
        while !self.ready.load(Ordering::Acquire) {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
            if start.elapsed() > SPIN {
                return;
            }
        }
    }

    /// Keeps what the body printed; call before [`ResultSlot::fill`].
    pub(crate) fn set_output(&self, output: Output) {
        *self.output.lock().unwrap_or_else(|p| p.into_inner()) = output;
    }

    /// Takes what the body printed (after the value).
    pub(crate) fn take_output(&self) -> Output {
        std::mem::take(&mut *self.output.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn is_filled(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Blocks until filled, then takes the result.
    pub(crate) fn take(&self) -> Result<Vec<u8>, Error> {
        self.spin_until_ready();
        let mut v = self.value.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(result) = v.take() {
                return result;
            }
            v = self.filled.wait(v).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Blocks until filled, leaving the result in place.
    pub(crate) fn resolve_wait(&self) {
        self.spin_until_ready();
        let v = self.value.lock().unwrap_or_else(|p| p.into_inner());
        let _filled = self
            .filled
            .wait_while(v, |_| !self.ready.load(Ordering::Acquire))
            .unwrap_or_else(|p| p.into_inner());
    }

    /// Blocks until filled or until `deadline`; true when filled.
    pub(crate) fn wait_until(&self, deadline: std::time::Instant) -> bool {
        self.spin_until_ready();
        let mut v = self.value.lock().unwrap_or_else(|p| p.into_inner());
        while !self.ready.load(Ordering::Acquire) {
            let now = std::time::Instant::now();
            if now >= deadline {
                return false;
            }
            v = self
                .filled
                .wait_timeout(v, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// Marks the future cancelled and runs the backend's hook, if any.
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        let hook = self
            .on_cancel
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(hook) = hook {
            hook();
        }
    }

    /// Sets what `cancel` does to stop the running body.
    pub(crate) fn on_cancel(&self, hook: CancelHook) {
        *self.on_cancel.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }
}
