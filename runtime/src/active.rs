//! Which plan is in force, and the backend that serves it.
//!
//! The plan in force for a thread is, in order: the innermost [`with_plan`]
//! scope of that thread (a worker running a future also sees the next level
//! of its plan this way), else the plan set with [`plan`], else
//! `FUTURIZE_PLAN`, else [`Sequential`](crate::Sequential); and always
//! `Sequential` under `FUTURIZE_DISABLE=1`, the global off switch. A malformed
//! `FUTURIZE_PLAN` is an [`Error::Plan`] wherever a plan is needed, never a
//! silent fallback; when the code sets a plan, which wins, it is still
//! reported once, as a warning on stderr. `FUTURIZE_PLAN=` (empty) is unset.
//!
//! Where a plan's backend starts, the other variables futurize reads are
//! checked too (`protocol/environment.rs`), and a plan built in code gets the
//! worker limits its text form would: a malformed value is an error on the
//! thread that needs the plan, before any background thread reads it.
//!
//! Each plan in force owns its backend (a thread pool, …), started on first
//! use. Futures keep their backend alive, so changing the plan never strands
//! a running future; the old backend shuts down once its last future is gone.

use crate::backend::{self, Backend};
use crate::body::NestedPlan;
use crate::sync::lock;
use crate::{Error, Plan, Sequential};
use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, OnceLock};

/// A plan in force together with its lazily started backend.
pub(crate) struct ActivePlan {
    plan: Plan,
    backend: OnceLock<Result<Arc<dyn Backend>, Error>>,
    nested: OnceLock<Arc<ActivePlan>>,
}

impl ActivePlan {
    pub(crate) fn new(plan: Plan) -> Arc<ActivePlan> {
        Arc::new(ActivePlan {
            plan,
            backend: OnceLock::new(),
            nested: OnceLock::new(),
        })
    }

    pub(crate) fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The backend of the first level, started on first use.
    pub(crate) fn backend(self: &Arc<Self>) -> Result<Arc<dyn Backend>, Error> {
        self.backend
            .get_or_init(|| {
                crate::protocol::environment::check()?;
                self.plan.check_limits("plan()")?;
                backend::start(self.plan.first(), handle(self.nested()))
            })
            .clone()
    }

    /// What futures running on this plan's workers see as their plan.
    fn nested(&self) -> Arc<ActivePlan> {
        self.nested
            .get_or_init(|| ActivePlan::new(self.plan.nested()))
            .clone()
    }
}

/// The handle through which bodies see `plan` as the plan in force.
fn handle(plan: Arc<ActivePlan>) -> NestedPlan {
    let text = plan.plan().clone();
    NestedPlan::new(text, move |body| within(&plan, body))
}

/// The handle through which a worker process's bodies see `plan`, the plan
/// its leader passed on.
pub(crate) fn nested_plan(plan: Plan) -> NestedPlan {
    handle(ActivePlan::new(plan))
}

static GLOBAL: Mutex<Option<Arc<ActivePlan>>> = Mutex::new(None);

thread_local! {
    static SCOPES: RefCell<Vec<Arc<ActivePlan>>> = const { RefCell::new(Vec::new()) };
}

fn from_env() -> Result<Arc<ActivePlan>, Error> {
    static FROM_ENV: OnceLock<Result<Arc<ActivePlan>, Error>> = OnceLock::new();
    FROM_ENV
        .get_or_init(|| {
            let plan = match std::env::var("FUTURIZE_PLAN") {
                Ok(text) if text.trim().is_empty() => Sequential.into(),
                Ok(text) => Plan::parse_from(&text, "FUTURIZE_PLAN")?,
                Err(std::env::VarError::NotPresent) => Sequential.into(),
                Err(std::env::VarError::NotUnicode(raw)) => {
                    return Err(Error::Plan {
                        source_name: "FUTURIZE_PLAN".into(),
                        text: raw.to_string_lossy().into_owned(),
                        reason: "the value is not valid UTF-8".into(),
                    });
                }
            };
            Ok(ActivePlan::new(plan))
        })
        .clone()
}

/// Says once, on stderr, that a malformed `FUTURIZE_PLAN` is overridden by
/// the plan the code sets: the code's plan wins, but the user who set the
/// variable learns that it was not used, and why.
fn warn_if_env_plan_malformed() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    if let Err(e) = from_env() {
        WARNED.call_once(|| {
            eprintln!("futurize: warning: {e}; FUTURIZE_PLAN is ignored, as the code sets a plan");
        });
    }
}

/// The plan in force for this thread, with its backend.
pub(crate) fn active() -> Result<Arc<ActivePlan>, Error> {
    if let Some(off) = disabled() {
        return Ok(off);
    }
    if let Some(scoped) = SCOPES.with(|s| s.borrow().last().cloned()) {
        return Ok(scoped);
    }
    if let Some(global) = lock(&GLOBAL).clone() {
        return Ok(global);
    }
    from_env()
}

/// The environment variable that turns parallelism off: with `1`, every
/// `future!`, `foreach!` and `#[futurize]` runs in place, in the calling
/// thread, whatever the plan (for debugging: a debugger, `dbg!` and
/// backtraces see one thread).
pub const DISABLE_ENV: &str = "FUTURIZE_DISABLE";

/// The sequential plan that `FUTURIZE_DISABLE=1` puts in force everywhere.
fn disabled() -> Option<Arc<ActivePlan>> {
    static OFF: OnceLock<Option<Arc<ActivePlan>>> = OnceLock::new();
    OFF.get_or_init(|| {
        let on = std::env::var(DISABLE_ENV).is_ok_and(|v| {
            let v = v.trim();
            !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false")
        });
        on.then(|| ActivePlan::new(Sequential.into()))
    })
    .clone()
}

/// Runs `f` with `plan` in force on this thread (what a [`NestedPlan`]
/// does around a body).
fn within<R>(plan: &Arc<ActivePlan>, f: impl FnOnce() -> R) -> R {
    let _scope = push(plan.clone());
    f()
}

fn push(plan: Arc<ActivePlan>) -> PlanGuard {
    let depth = SCOPES.with(|s| {
        let mut s = s.borrow_mut();
        s.push(plan);
        s.len()
    });
    PlanGuard {
        depth,
        _same_thread: PhantomData,
    }
}

/// Sets the plan for the whole program and returns the previous one (R's `plan()`).
///
/// Futures already created keep running where they were started. A
/// [`with_plan`] scope still wins inside its thread.
///
/// ```
/// use futurize_runtime::{plan, Multithread, Sequential};
/// let before = plan(Multithread::workers(2));
/// assert_eq!(futurize_runtime::current_plan().unwrap().to_string(), "multithread:2");
/// plan(before);
/// ```
pub fn plan(new: impl Into<Plan>) -> Plan {
    warn_if_env_plan_malformed();
    let previous = current_plan_ignoring_scopes();
    *lock(&GLOBAL) = Some(ActivePlan::new(new.into()));
    previous
}

fn current_plan_ignoring_scopes() -> Plan {
    let global = lock(&GLOBAL).clone();
    match global {
        Some(g) => g.plan().clone(),
        None => from_env()
            .map(|a| a.plan().clone())
            .unwrap_or_else(|_| Sequential.into()),
    }
}

/// The plan in force for this thread; prints as the text form of `FUTURIZE_PLAN`.
///
/// # Errors
/// [`Error::Plan`] when no plan was set in code and `FUTURIZE_PLAN` is malformed.
///
/// ```
/// let p = futurize_runtime::current_plan().unwrap();
/// println!("running under {p}");
/// ```
pub fn current_plan() -> Result<Plan, Error> {
    Ok(active()?.plan().clone())
}

/// Puts `plan` in force on this thread until the guard is dropped, panics
/// included; the previous plan comes back then.
///
/// ```
/// use futurize_runtime::{current_plan, with_plan, Multithread};
/// {
///     let _g = with_plan(Multithread::workers(2));
///     assert_eq!(current_plan().unwrap().to_string(), "multithread:2");
/// }
/// ```
pub fn with_plan(plan: impl Into<Plan>) -> PlanGuard {
    warn_if_env_plan_malformed();
    push(ActivePlan::new(plan.into()))
}

/// Restores the previous plan of this thread when dropped. Not `Send`: a
/// scope belongs to the thread that opened it.
#[must_use = "the plan is restored as soon as the guard is dropped"]
pub struct PlanGuard {
    depth: usize,
    _same_thread: PhantomData<*const ()>,
}

impl Drop for PlanGuard {
    fn drop(&mut self) {
        SCOPES.with(|s| s.borrow_mut().truncate(self.depth - 1));
    }
}

/// How many futures the plan in force runs at once (R's `nbrOfWorkers()`).
///
/// ```
/// use futurize_runtime::{nbr_of_workers, with_plan, Multithread};
/// let _g = with_plan(Multithread::workers(3));
/// assert_eq!(nbr_of_workers().unwrap(), 3);
/// ```
pub fn nbr_of_workers() -> Result<usize, Error> {
    let plan = active()?.plan().clone();
    Ok(match plan.first() {
        // Each allocation runs the nested multiprocess level's workers.
        crate::Level::SlurmPool(p) => {
            p.max_allocations() * crate::backend::pool_workers_per_allocation(&plan.nested())
        }
        first => first.workers(),
    })
}

/// How many workers of the plan in force are idle now (R's `nbrOfFreeWorkers()`).
///
/// ```
/// use futurize_runtime::{nbr_of_free_workers, with_plan, Multithread};
/// let _g = with_plan(Multithread::workers(2));
/// assert_eq!(nbr_of_free_workers().unwrap(), 2);
/// ```
pub fn nbr_of_free_workers() -> Result<usize, Error> {
    Ok(active()?.backend()?.free_workers())
}

/// Idle workers of the plan in force, without starting its backend: all of
/// them when it has not started.
pub(crate) fn free_workers_without_starting() -> Result<usize, Error> {
    let plan = active()?;
    Ok(match plan.backend.get() {
        Some(Ok(backend)) => backend.free_workers(),
        _ => plan.plan().first().workers(),
    })
}

/// Where the plan in force on this thread comes from, in words, for
/// `session_info()`.
pub(crate) fn plan_source() -> &'static str {
    if disabled().is_some() {
        return "FUTURIZE_DISABLE turns parallelism off";
    }
    if SCOPES.with(|s| !s.borrow().is_empty()) {
        return "set in code: with_plan(), on this thread";
    }
    if lock(&GLOBAL).is_some() {
        return "set in code: plan()";
    }
    match std::env::var_os("FUTURIZE_PLAN") {
        Some(v) if !v.is_empty() => "from FUTURIZE_PLAN",
        _ => "the default: none set in code or in FUTURIZE_PLAN",
    }
}
