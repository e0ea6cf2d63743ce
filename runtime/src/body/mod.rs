//! Running user code: what the leader's in-process backends and a worker
//! process share, and what neither side's machinery may reach into.
//!
//! * [`capture`]: how a `future!`'s captures travel and are rebuilt;
//! * [`foreach_capture`]: how a `foreach!`'s captures are seen per element;
//! * [`chunk`]: running a chunk of elements, each under its own panic
//!   catcher, and the chunk entry function a worker calls;
//! * here: running one future's body, turning a panic into a [`Panic`], time
//!   limits, and [`NestedPlan`], the narrow handle through which a body gets
//!   the plan it should see.
//!
//! Invariant: nothing here imports the leader side (plans in force,
//! backends, the map engine) or the worker side (the serve loop). What a
//! body needs from either comes in as a value: a [`NestedPlan`], a
//! [`chunk::ElementEvents`], a [`step hook`](set_worker_step_hook).
//!
//! A panic hook, installed once, records the location (and a backtrace when
//! `RUST_BACKTRACE` asks for one) of panics raised inside a body and keeps
//! them off stderr: the error travels to the leader instead. Panics outside
//! bodies go to the hook that was there before.

pub mod capture;
pub mod chunk;
pub mod foreach_capture;

use crate::relay::{self, Output};
use crate::rng;
use crate::settings::Settings;
use crate::{Error, Panic, Plan};
use capture::EntryFn;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Once, OnceLock};
use std::time::Instant;

/// The plan bodies see while they run: the next level of the plan of the
/// backend that runs them. A narrow handle: it names that plan and puts it in
/// force around a body, and nothing else; whoever makes one decides how.
#[derive(Clone)]
pub(crate) struct NestedPlan {
    plan: Plan,
    enter: Arc<Enter>,
}

/// Runs its argument with a plan in force.
type Enter = dyn Fn(&mut dyn FnMut()) + Send + Sync;

impl NestedPlan {
    /// A handle for `plan`; `enter` runs its argument with `plan` in force.
    pub(crate) fn new(
        plan: Plan,
        enter: impl Fn(&mut dyn FnMut()) + Send + Sync + 'static,
    ) -> Self {
        NestedPlan {
            plan,
            enter: Arc::new(enter),
        }
    }

    /// The plan itself (its text form travels to worker processes).
    pub(crate) fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Runs `f` with the plan in force on this thread.
    pub(crate) fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        let mut f = Some(f);
        let mut value = None;
        (self.enter)(&mut || value = f.take().map(|f| f()));
        value.expect("`enter` runs its argument once")
    }
}

/// Where `progress!()` goes in a worker process (the worker installs it once).
static WORKER_STEP_HOOK: OnceLock<fn(Option<String>)> = OnceLock::new();

/// Sets where `progress!()` steps go when no bar of this process takes them:
/// a worker process forwards them to its leader.
pub(crate) fn set_worker_step_hook(hook: fn(Option<String>)) {
    let _ = WORKER_STEP_HOOK.set(hook);
}

/// A `progress!()` step outside any bar of this process.
pub(crate) fn step_elsewhere(message: Option<String>) {
    if let Some(hook) = WORKER_STEP_HOOK.get() {
        hook(message);
    }
}

struct PanicFacts {
    location: Option<String>,
    backtrace: Option<String>,
}

thread_local! {
    static IN_BODY: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<PanicFacts>> = const { RefCell::new(None) };
}

fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_BODY.with(Cell::get) {
                let wants_backtrace =
                    std::env::var_os("RUST_BACKTRACE").is_some_and(|v| !v.is_empty() && v != "0");
                let facts = PanicFacts {
                    location: info.location().map(|l| l.to_string()),
                    backtrace: wants_backtrace
                        .then(|| std::backtrace::Backtrace::force_capture().to_string()),
                };
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(facts));
            } else {
                previous(info);
            }
        }));
    });
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a payload that is not text".to_string()
    }
}

/// Runs a future's `entry` on `captures` with `nested` as the plan in force
/// and the future's `settings`. In this process (`in_process`), what the
/// body's print macros write is captured on this thread (kept unless
/// `stdout = false`), and its time limit is checked when it returns (a body
/// here cannot be stopped); a worker process captures its file descriptors
/// instead, and its timer enforces the limit.
pub(crate) fn run(
    entry: EntryFn,
    captures: &[u8],
    nested: &NestedPlan,
    settings: &Settings,
    in_process: bool,
) -> (Result<Vec<u8>, Error>, Output) {
    let limit = settings.timeout.as_ref().filter(|_| in_process);
    let started = limit.map(|_| Instant::now());
    let stream = settings.streams;
    let run = || {
        nested.run(|| {
            catch(|| rng::with_stream(stream, 0, || entry(captures)))
                .map_err(Error::from)
                .and_then(|r| r)
        })
    };
    let (result, output) = if in_process {
        relay::capture(settings.stdout, run)
    } else {
        (run(), Output::default())
    };
    let result = match (result, limit, started) {
        (Ok(_), Some(l), Some(t)) if t.elapsed() > l.limit => Err(l.error()),
        (result, _, _) => result,
    };
    (result, output)
}

/// Runs `f`, turning a panic into a [`Panic`] with its message and location
/// (and a backtrace when `RUST_BACKTRACE` asks for one).
///
/// Generic over `f` only for the call: what happens around it is in
/// non-generic functions, so that each wrapped closure adds no copy of the
/// thread-local accesses.
#[inline]
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Panic> {
    let was_in_body = enter_catch();
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    leave_catch(was_in_body);
    outcome.map_err(panic_of)
}

/// Marks this thread as running a body; returns what it was before.
fn enter_catch() -> bool {
    install_hook();
    IN_BODY.with(|b| b.replace(true))
}

fn leave_catch(was_in_body: bool) {
    IN_BODY.with(|b| b.set(was_in_body));
}

/// The [`Panic`] of a caught payload, with what the hook recorded.
#[cold]
fn panic_of(payload: Box<dyn std::any::Any + Send>) -> Panic {
    let facts = LAST_PANIC.with(|p| p.borrow_mut().take());
    Panic {
        message: panic_message(&*payload),
        location: facts.as_ref().and_then(|f| f.location.clone()),
        backtrace: facts.and_then(|f| f.backtrace),
    }
}

/// Set when this process, a Slurm job, got its time signal (`SIGUSR1`,
/// `--signal=B:USR1@margin`): its chunk starts no new element.
static TIME_IS_UP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this job's time is nearly up (see [`TIME_IS_UP`]).
#[inline]
pub(crate) fn time_is_up() -> bool {
    TIME_IS_UP.load(std::sync::atomic::Ordering::Relaxed)
}

/// Notes that the time is nearly up; async-signal-safe (one atomic store).
pub(crate) fn set_time_is_up() {
    TIME_IS_UP.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The environment variable a Slurm job sets for its processes: when its
/// time limit ends, in seconds since the Unix epoch.
pub(crate) const DEADLINE_ENV: &str = "FUTURIZE_JOB_DEADLINE";

/// How long the Slurm job this body runs in has left before its time limit,
/// `None` off Slurm (or when the job's limit is not known): a body can save
/// its state, or do less, before the job is ended.
///
/// ```
/// // Off Slurm there is no limit to tell.
/// assert_eq!(futurize::time_left(), None);
/// ```
pub fn time_left() -> Option<std::time::Duration> {
    static DEADLINE: std::sync::OnceLock<Option<std::time::SystemTime>> =
        std::sync::OnceLock::new();
    let deadline = DEADLINE.get_or_init(|| {
        let secs: u64 = std::env::var(DEADLINE_ENV).ok()?.trim().parse().ok()?;
        Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
    });
    let deadline = (*deadline)?;
    Some(
        deadline
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}
