//! The `Future` handle: three atomic building blocks, as in R.
//!
//! Create (`future!`), ask whether it is done ([`Future::resolved`], never
//! blocks), collect ([`Future::value`], blocks). A future is started under the
//! plan in force when it is created (or at first use, with `lazy = true`) and
//! keeps that plan's backend alive until it is collected or dropped.

use crate::Error;
use crate::active::{self, ActivePlan};
use crate::backend::slot::Payload;
use crate::backend::{Entry, ResultSlot, Submitted, Work};
use crate::body::capture::EntryOf;
use crate::cache::CallCache;
use crate::relay::{self, Output};
use crate::rng::SeedSpec;
use crate::settings::Settings;
use crate::settings::TimeLimit;
use crate::sync::lock;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Options of one future, as written after its body in `future!`.
#[doc(hidden)]
#[derive(Debug, Clone, Default)]
pub struct FutureOptions {
    /// `lazy = true`: start at the first `resolved()` or `value()`.
    pub lazy: bool,
    /// `seed = ...`: the future gets its own random stream.
    pub seed: Option<SeedSpec>,
    /// Everything else, as the future runs with it.
    pub settings: Settings,
    /// `cache = ...`, and where the future is (for its cache key).
    pub cache: Option<crate::cache::CacheSpec>,
}

enum State {
    Lazy(Work, Arc<ActivePlan>),
    Running(Arc<ResultSlot>),
    Done(Result<Vec<u8>, Error>, Output),
    /// A lazy future asked whether it is resolved while its plan's workers
    /// were busy: a thread waits for a free worker and starts it.
    Queued(Arc<Queued>),
    Cancelled,
    Collected,
}

/// A lazy future being started in the background.
struct Queued {
    /// What starting it gave, once it has.
    started: Mutex<Option<(State, bool)>>,
    arrived: std::sync::Condvar,
    /// Given up before it started: cancel it as soon as it has.
    cancelled: AtomicBool,
}

impl Queued {
    /// Starts `task` on a thread of its own (which may wait for a free worker).
    fn start(task: Work, plan: Arc<ActivePlan>) -> Arc<Queued> {
        let q = Arc::new(Queued {
            started: Mutex::new(None),
            arrived: std::sync::Condvar::new(),
            cancelled: AtomicBool::new(false),
        });
        let for_thread = q.clone();
        let run = move || {
            let (state, keeps) = start(task, &plan);
            let slot = match &state {
                State::Running(slot) => Some(slot.clone()),
                _ => None,
            };
            *lock(&for_thread.started) = Some((state, keeps));
            for_thread.arrived.notify_all();
            // Cancelled meanwhile: the flag was set before this looks, or
            // `cancel_started` sees the stored slot.
            if for_thread.cancelled.load(AtomicOrdering::Acquire)
                && let Some(slot) = slot
            {
                slot.cancel();
            }
        };
        if let Err(e) = std::thread::Builder::new()
            .name("futurize-queued".into())
            .spawn(run)
        {
            *lock(&q.started) = Some((
                State::Done(
                    Err(Error::Launch {
                        what: "a thread to start a lazy future".into(),
                        reason: e.to_string(),
                    }),
                    Output::default(),
                ),
                false,
            ));
        }
        q
    }

    /// Gives the future up: stopped as soon as it has started (or now, if
    /// it has).
    fn cancel(&self) {
        self.cancelled.store(true, AtomicOrdering::Release);
        if let Some((State::Running(slot), _)) = lock(&self.started).as_ref() {
            slot.cancel();
        }
    }
}

/// A value being computed somewhere, as the plan in force decided.
///
/// Created by `future!`; collect it with [`Future::value`].
///
/// Dropping a future that is still running cancels it: nothing waits for it
/// and its value is discarded. A process backend stops the body (the worker
/// is replaced); on `Multithread` a body that has started cannot be
/// interrupted, so it runs to its end on its own thread while a new thread
/// takes its place. What a body prints is shown when its value is collected.
///
/// ```
/// use futurize::prelude::*;
/// let xs = vec![1.0, 2.0, 3.0];
/// let f = future!(xs.iter().sum::<f64>());
/// assert_eq!(f.value().unwrap(), 6.0);
/// ```
pub struct Future<T> {
    state: Mutex<State>,
    label: Option<String>,
    /// `timeout`, and when a running future's time is up (set when it starts).
    timeout: Option<TimeLimit>,
    deadline: Mutex<Option<Instant>>,
    /// The backend enforces `timeout` itself (a Slurm job's time limit, which
    /// does not count the time the job waits in the queue).
    backend_keeps_time: AtomicBool,
    /// Where its value is kept, when it is cached and was not found there.
    cache: Option<CallCache>,
    /// The `log` records of a value found in the cache, logged when it is
    /// collected (as they were when it was computed).
    replay_logs: Vec<crate::protocol::wire::LogRecord>,
    _value: PhantomData<fn() -> T>,
}

/// The future of `entry`: [`Future::__new`], asking of the value what
/// `__entry_of` asks (`SendsBack`), so that `future!`, which points both
/// calls at the body's value, gets one error there when a worker cannot
/// send the value back, in futurize's words.
#[doc(hidden)]
pub fn __future_of<T: crate::body::capture::SendsBack>(
    entry: EntryOf<T>,
    captures: Result<Vec<u8>, Error>,
    options: FutureOptions,
) -> Future<T> {
    Future::__new(entry, captures, options)
}

impl<T: DeserializeOwned> Future<T> {
    #[doc(hidden)]
    pub fn __new(
        entry: EntryOf<T>,
        captures: Result<Vec<u8>, Error>,
        options: FutureOptions,
    ) -> Self {
        let FutureOptions {
            lazy,
            seed,
            mut settings,
            cache,
        } = options;
        let mut kept = None;
        let label = settings.label.clone();
        let timeout = settings.timeout.clone();
        let mut backend_keeps_time = false;
        let created = Instant::now();
        if crate::trace::on() {
            crate::trace::instant(
                "future created",
                label.iter().map(|l| ("label", l.clone())).collect(),
            );
        }
        let state = match (captures, active::active()) {
            (Err(e), _) | (_, Err(e)) => State::Done(Err(e), Output::default()),
            (Ok(captures), Ok(plan)) => {
                settings.streams = seed.map(|s| s.streams(1));
                let cached = match CallCache::open(
                    cache.as_ref(),
                    &captures,
                    settings.streams.as_ref(),
                    (1, &mut |_, _| Ok(())),
                    label.as_deref(),
                ) {
                    Ok(cached) => cached,
                    Err(e) => return Future::done(Err(e), label, timeout),
                };
                if let Some(c) = cached {
                    if let Some(value) = c.lookup(0) {
                        let value = value.to_vec();
                        let (output, logs) = c
                            .outputs()
                            .into_iter()
                            .map(|(_, o, l)| (o, l))
                            .next()
                            .unwrap_or_default();
                        let mut done = Future::done(Ok(value), label, timeout).with_output(output);
                        done.replay_logs = logs;
                        return done;
                    }
                    kept = Some(c);
                }
                let task = Work {
                    entry: Entry::Future(entry.entry),
                    payload: captures,
                    settings,
                };
                if lazy {
                    State::Lazy(task, plan)
                } else {
                    let (state, keeps) = start(task, &plan);
                    backend_keeps_time = keeps;
                    if crate::trace::on() {
                        crate::trace::span(
                            "future queued",
                            crate::trace::Lane::Leader,
                            created,
                            label.iter().map(|l| ("label", l.clone())).collect(),
                        );
                    }
                    state
                }
            }
        };
        let future = Future {
            state: Mutex::new(state),
            label,
            timeout,
            deadline: Mutex::new(None),
            backend_keeps_time: AtomicBool::new(backend_keeps_time),
            cache: kept,
            replay_logs: Vec::new(),
            _value: PhantomData,
        };
        if future.timeout.is_some() {
            future.set_deadline(&future.state());
        }
        future
    }

    /// A future that is already resolved with `result`.
    fn done(
        result: Result<Vec<u8>, Error>,
        label: Option<String>,
        timeout: Option<TimeLimit>,
    ) -> Self {
        Future {
            state: Mutex::new(State::Done(result, Output::default())),
            label,
            timeout,
            deadline: Mutex::new(None),
            backend_keeps_time: AtomicBool::new(false),
            cache: None,
            replay_logs: Vec::new(),
            _value: PhantomData,
        }
    }

    /// The same resolved future, having printed `output`.
    fn with_output(self, output: Output) -> Self {
        if let State::Done(_, printed) = &mut *self.state() {
            *printed = output;
        }
        self
    }

    /// The label given with `label = "..."`.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Starts a lazy future, waiting for a free worker if need be; takes
    /// over a queued start once it has happened.
    fn launch(&self, state: &mut State) {
        if matches!(state, State::Lazy(..)) {
            let State::Lazy(task, plan) = std::mem::replace(state, State::Collected) else {
                unreachable!()
            };
            let (started, keeps) = start(task, &plan);
            self.adopt(state, started, keeps);
        }
        self.take_queued(state, true);
    }

    /// Starts a lazy future without waiting: on a thread of its own.
    fn queue(&self, state: &mut State) {
        if matches!(state, State::Lazy(..)) {
            let State::Lazy(task, plan) = std::mem::replace(state, State::Collected) else {
                unreachable!()
            };
            *state = State::Queued(Queued::start(task, plan));
        }
    }

    /// Takes a queued start's outcome into `state` once it is there
    /// (waiting for it with `wait`).
    fn take_queued(&self, state: &mut State, wait: bool) {
        let State::Queued(q) = state else { return };
        let q = q.clone();
        let arrived = {
            let mut started = lock(&q.started);
            if wait {
                started = q
                    .arrived
                    .wait_while(started, |s| s.is_none())
                    .unwrap_or_else(|p| p.into_inner());
            }
            started.take()
        };
        if let Some((started, keeps)) = arrived {
            self.adopt(state, started, keeps);
        }
    }

    /// Makes `started` the future's state, with its clock.
    fn adopt(&self, state: &mut State, started: State, keeps: bool) {
        *state = started;
        self.backend_keeps_time
            .store(keeps, AtomicOrdering::Relaxed);
        self.set_deadline(state);
    }

    /// Starts the clock of a running future with a `timeout`. The leader
    /// waits a little past the limit, so that a worker process's own report
    /// (which names the element) arrives first.
    fn set_deadline(&self, state: &State) {
        if self.backend_keeps_time.load(AtomicOrdering::Relaxed) {
            return;
        }
        if let (State::Running(_), Some(t)) = (state, &self.timeout) {
            let grace = Duration::from_millis(100) + t.limit / 20;
            // A limit too far away to count is no limit.
            *lock(&self.deadline) = Instant::now()
                .checked_add(t.limit)
                .and_then(|at| at.checked_add(grace));
        }
    }

    /// Waits for a running future's slot, up to its deadline; past it, stops
    /// the body (a worker process is killed, a thread is replaced) and
    /// answers [`Error::Timeout`].
    fn wait(&self, slot: &ResultSlot) -> Option<Error> {
        let limit = self.timeout.as_ref()?;
        let at = (*lock(&self.deadline))?;
        let filled = slot.wait_until(at);
        // Also when an earlier wait already gave up and stopped it.
        if !filled || (slot.is_cancelled() && Instant::now() >= at) {
            slot.cancel();
            return Some(limit.error());
        }
        None
    }

    /// True once the value (or the error) is there; never blocks, not on the
    /// body and not on the plan's workers. A lazy future is started by this
    /// call: when every worker is busy, it is queued and starts as soon as
    /// one is free.
    ///
    /// ```
    /// use futurize::prelude::*;
    /// let f = future!(1 + 1);
    /// f.resolve();
    /// assert!(f.resolved());
    /// ```
    pub fn resolved(&self) -> bool {
        let mut state = self.state();
        self.queue(&mut state);
        self.take_queued(&mut state, false);
        match &*state {
            State::Running(slot) => slot.is_filled() || self.past_deadline(slot),
            State::Lazy(..) | State::Queued(_) => false,
            State::Done(..) | State::Cancelled | State::Collected => true,
        }
    }

    /// True once a running future's time is up; stops its body then (its
    /// value will be [`Error::Timeout`]).
    fn past_deadline(&self, slot: &ResultSlot) -> bool {
        if self.timeout.is_none() {
            return false;
        }
        let deadline = *lock(&self.deadline);
        let past = deadline.is_some_and(|at| Instant::now() >= at);
        if past {
            slot.cancel();
        }
        past
    }

    /// Waits until the future is resolved, without taking its value.
    pub fn resolve(&self) {
        let slot = {
            let mut state = self.state();
            self.launch(&mut state);
            match &*state {
                State::Running(slot) => slot.clone(),
                _ => return,
            }
        };
        if self.wait(&slot).is_none() {
            slot.resolve_wait();
        }
    }

    /// Waits for the value, and shows what the body printed (its stdout on
    /// stdout, its stderr on stderr), as R's `value()` relays output.
    ///
    /// With `timeout = "..."` the wait ends at the limit: the body is stopped
    /// (a worker process is killed and replaced; a thread is replaced and
    /// the body's value discarded when it returns) and the answer is
    /// [`Error::Timeout`].
    ///
    /// ```
    /// use futurize::prelude::*;
    /// let f = future!({
    ///     println!("computing on whichever worker the plan chose");
    ///     6 * 7
    /// });
    /// assert_eq!(f.value().unwrap(), 42); // the line is printed here
    /// ```
    ///
    /// # Errors
    /// [`Error::Panicked`] when the body panicked, [`Error::Cancelled`] after
    /// [`Future::cancel`], [`Error::Timeout`] past its `timeout`, and the
    /// errors of the backend that ran it.
    pub fn value(self) -> Result<T, Error> {
        let label = self.label.clone();
        let state = {
            let mut state = self.state();
            self.launch(&mut state);
            std::mem::replace(&mut *state, State::Collected)
        };
        let mut logs = Vec::new();
        let (bytes, output) = match state {
            State::Running(slot) => {
                if let Some(timed_out) = self.wait(&slot) {
                    return Err(timed_out.with_label(label.as_deref()));
                }
                let result = slot.take();
                logs = slot.take_logs();
                if slot.is_cancelled() {
                    (Err(Error::Cancelled { label: None }), Output::default())
                } else {
                    (result, slot.take_output())
                }
            }
            State::Done(result, output) => (result.map(Payload::Bytes), output),
            State::Cancelled => (Err(Error::Cancelled { label: None }), Output::default()),
            State::Lazy(..) | State::Queued(_) | State::Collected => {
                unreachable!("a future is collected once")
            }
        };
        relay::relay(&output);
        for record in &self.replay_logs {
            crate::backend::emit_log(record.clone(), label.as_deref());
        }
        if let (Some(cache), Ok(value)) = (&self.cache, &bytes) {
            cache.store(&[(0, value.with_bytes(<[u8]>::to_vec))], &output, &logs);
        }
        if crate::trace::on() {
            crate::trace::instant(
                "future collected",
                label.iter().map(|l| ("label", l.clone())).collect(),
            );
        }
        bytes
            .and_then(|b| {
                let value = b.with_bytes(|b| crate::protocol::forms::decode_value(b, "the value"));
                b.done();
                value
            })
            .map_err(|e| e.with_label(label.as_deref()))
    }

    /// Asks the future to give up. Returns true when it will not deliver a
    /// value (its `value()` is then [`Error::Cancelled`]); false when it had
    /// already finished, in which case its value stays available.
    ///
    /// A body that has not started never starts. On `Multiprocess` a running
    /// body is stopped (its worker is killed and replaced); on `Multithread`
    /// it goes on to its end and its value is discarded, while a new thread
    /// takes its place in the pool at once.
    ///
    /// ```
    /// use futurize::prelude::*;
    /// let f = future!(40 + 2, lazy = true);
    /// assert!(f.cancel());
    /// assert!(matches!(f.value(), Err(futurize::Error::Cancelled { .. })));
    /// ```
    pub fn cancel(&self) -> bool {
        let mut state = self.state();
        match &*state {
            State::Lazy(..) => {
                *state = State::Cancelled;
                true
            }
            State::Queued(q) => {
                q.cancel();
                *state = State::Cancelled;
                true
            }
            State::Running(slot) if !slot.is_filled() => {
                slot.cancel();
                true
            }
            State::Cancelled => true,
            _ => false,
        }
    }
}

/// Starts `task` on the backend of `plan` that can meet its resources; and
/// whether that backend enforces the time limit itself.
fn start(task: Work, plan: &Arc<ActivePlan>) -> (State, bool) {
    let backend = plan
        .backend()
        .and_then(|b| crate::backend::for_resources(b, task.settings.resources()));
    match backend {
        Err(e) => (State::Done(Err(e), Output::default()), false),
        Ok(backend) => {
            let keeps = backend.keeps_time_limits();
            let state = match backend.submit(task) {
                Submitted::Ready(result, output) => State::Done(result, output),
                Submitted::Running(slot) => State::Running(slot),
            };
            (state, keeps)
        }
    }
}

/// Dropping a future that is still running cancels it: a process backend
/// stops its body; on `Multithread` the body runs on (its thread replaced) and
/// its value is discarded.
impl<T> Drop for Future<T> {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        match state {
            State::Running(slot) if !slot.is_filled() => slot.cancel(),
            State::Queued(q) => q.cancel(),
            _ => {}
        }
    }
}

impl<T> std::fmt::Debug for Future<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &*lock(&self.state) {
            State::Lazy(..) => "lazy",
            State::Queued(_) => "queued",
            State::Running(slot) if slot.is_filled() => "resolved",
            State::Running(_) => "running",
            State::Done(..) => "resolved",
            State::Cancelled => "cancelled",
            State::Collected => "collected",
        };
        f.debug_struct("Future")
            .field("label", &self.label)
            .field("state", &state)
            .finish()
    }
}
