//! # futurize
//!
//! R's future framework for Rust: **the developer decides what to
//! parallelize, the user decides where and how.**
//!
//! Code marks work with [`future!`]; one [`plan`](fn@plan) at the top of `main` (or
//! the `FUTURIZE_PLAN` environment variable when the code sets none) decides
//! whether it runs in the calling thread, on worker threads, in worker
//! processes, on other machines or as Slurm jobs, without touching the code
//! that does the work.
//!
//! ```
//! use futurize::prelude::*;
//!
//! fn slow_sum(xs: &[u64]) -> u64 {
//!     xs.iter().sum()
//! }
//!
//! fn main() -> Result<(), futurize::Error> {
//!     plan(Multithread::workers(2));
//!     let xs: Vec<u64> = (1..=10).collect();
//!     let (low, high) = xs.split_at(5);
//!     let a = future!(slow_sum(low));
//!     let b = future!(slow_sum(high), label = "upper half");
//!     assert_eq!(a.value()? + b.value()?, 55);
//!     Ok(())
//! }
//! ```
//!
//! ## Captures keep their types
//! A `future!` body uses variables from outside exactly as it would in
//! place: `low` above is a `&[u64]` inside the body too. The macro finds
//! them at compile time and ships them to the worker, which rebuilds them
//! from bytes (serde). A future works on its own copy: it may consume or
//! mutate it, and the caller's variable is untouched. Assigning to a
//! captured variable is a compile error, since nothing is written back. So
//! is capturing what cannot travel (an `Rc`, a closure, an open file, a raw
//! pointer, a borrow inside a value such as `&[&str]`): the error is at the
//! variable and says what to capture instead. A body calls `fn` items
//! directly (a worker runs the same program); a closure it calls,
//! `model(x)` with `let model = |x| ..`, is code that cannot travel, which
//! rustc reports as "`model` captured here": make it a `fn` item, or
//! capture the data it uses.
//!
//! ## Worker processes
//! Under [`Multiprocess`] futures run in worker processes that are this same
//! executable started again. A hook that runs before `main` turns such a
//! process into a worker, so binaries, examples, tests, doctests and benches
//! need no extra line:
//!
//! ```
//! use futurize::prelude::*;
//! let _g = with_plan(Multiprocess::workers(2));
//! let here = std::process::id();
//! let there = future!(std::process::id()).value().unwrap();
//! assert_ne!(here, there);
//! ```
//!
//! ## Output, logs, failures and progress
//! What a body prints is captured where it runs and shown by the caller when
//! the values are collected, in element order, the same text under every
//! plan (on worker processes this includes what the functions it calls
//! print). `log` records from workers reach the caller's logger at once,
//! tagged `label` and `index`. `timeout = "10m"` limits each element: on
//! worker processes one over its limit is stopped then (its worker is
//! killed); threads cannot be stopped, so on `sequential` and `multithread`
//! it runs to its end and is then reported as an [`Error::Timeout`].
//! `retries = n` runs a chunk again when
//! its worker died, `progress = true` shows a bar moved by finished elements
//! and by [`progress!`] steps. Worker processes send a heartbeat twice a
//! second; one that stops answering (a stopped process, say) is killed
//! after `FUTURIZE_SILENCE_LIMIT` (30 s), or after its `timeout` when one is
//! set, and reported as an [`Error::WorkerDied`] "not responding", so
//! `retries` run its chunk again.
//!
//! ```
//! use futurize::prelude::*;
//! let _g = with_plan(Multiprocess::workers(2));
//! let squares: Vec<u64> = foreach!(i in 0..6u64 => {
//!     println!("element {i}");          // shown in element order when the call returns
//!     progress!();
//!     i * i
//! } %dofuture% timeout = "1m", retries = 1, progress = true, label = "squares")?;
//! assert_eq!(squares, vec![0, 1, 4, 9, 16, 25]);
//! # Ok::<(), futurize::Error>(())
//! ```
//!
//! ## Plans
//! | plan | `FUTURIZE_PLAN` | where futures run |
//! |---|---|---|
//! | [`Sequential`] (default) | `sequential` | in the calling thread, when created |
//! | [`Multithread::workers(n)`](Multithread::workers) | `multithread:n` | on `n` threads of this process |
//! | [`Multiprocess::workers(n)`](Multiprocess::workers) | `multiprocess:n` | in `n` persistent worker processes |
//! | [`Multiprocess::workers(n).fresh()`](Multiprocess::fresh) | `multiprocess:n:fresh` | in a new process per future, `n` at once |
//! | [`Cluster::hosts(["n1", "n1", "n2"])`](Cluster::hosts) | `cluster:n1,n1,n2` (`cluster`: [`available_workers`]) | in worker processes on other machines, over ssh (srun inside an allocation) |
//! | [`Slurm::jobs()`](Slurm::jobs) | `slurm`, `slurm:n` | each future a batch job, each `foreach!` a job array; at most `n` (100) jobs in flight |
//! | [`Slurm::pool()`](Slurm::pool) | `slurm-pool`, `slurm-pool:n` | worker processes inside at most `n` (10) Slurm allocations that grow with the work and are given back when idle |
//! | [`Plan::first_fit([a, b])`](Plan::first_fit) | `a\|b` | on the first of `a`, `b` that can meet the work's `resources` |
//! | `[a.into(), b.into()]` | `a/b` | on `a`; futures created there run on `b` |
//!
//! Worker processes of [`Multiprocess`] get their share of the cores in
//! `RAYON_NUM_THREADS`, `OMP_NUM_THREADS`, `OPENBLAS_NUM_THREADS` and
//! `MKL_NUM_THREADS` (those the user did not set), so rayon or a BLAS inside
//! the bodies does not oversubscribe the machine. A pool raises the soft
//! open-file limit to the hard one (a worker costs three descriptors), so a
//! thousand workers start under the usual soft limit of 1024; a hard limit too
//! low is an [`Error::Launch`] saying how many are needed, before any worker
//! starts, and so is a temporary directory (`TMPDIR`) that cannot hold the
//! files a worker's output is captured in.
//!
//! ## Observing and debugging
//! - `FUTURIZE_DISABLE=1` runs every `future!`, `foreach!` and `#[futurize]`
//!   in place, in the calling thread, whatever the plan (also one set in
//!   code): the global off switch for a debugger.
//! - `FUTURIZE_TRACE=trace.json` writes a Chrome trace when the program
//!   exits: one lane per worker (host and pid, a thread, a Slurm job), a span
//!   per future and chunk with its label and elements, and on the leader's
//!   lane when each future was created, queued and collected. It opens in
//!   Perfetto or chrome://tracing. The efficiency (busy time ÷ workers × wall
//!   time) goes into the file, and to stderr with `FUTURIZE_TRACE_SUMMARY=1`.
//! - [`session_info()`] reports this build (version, build id, rustc), the
//!   machine (OS, cores by each method of [`available_cores`], memory), the
//!   plan in force with its workers, and a cluster's hosts. It starts no
//!   worker and connects nowhere; [`SessionInfo::check_hosts`] asks the hosts
//!   (and Slurm) whether they answer. `cargo run --example session_info`
//!   prints it.
//!
//! ```
//! use futurize::prelude::*;
//! let _g = with_plan(Multiprocess::workers(2));
//! let info = session_info();
//! assert_eq!(info.plan.as_ref().unwrap().to_string(), "multiprocess:2");
//! assert_eq!(info.workers.as_ref().ok(), Some(&2));
//! assert!(info.cores >= 1);
//! println!("{info}"); // a report to paste into a bug report
//! ```
//!
//! [`as_completed`] yields the futures' values in the order they finish,
//! each with its index, as Python's `concurrent.futures.as_completed`; a
//! failure comes as an `Err` at its index and the others go on.
//! [`FutureVec`] is R's listenv pattern `x[[i]] %<-% { … }`: push futures,
//! then read `x[i]` or [`FutureVec::get`], which waits for that element only.
//!
//! ```
//! use futurize::prelude::*;
//! use std::time::Duration;
//!
//! fn nap(ms: u64) -> u64 {
//!     std::thread::sleep(Duration::from_millis(ms));
//!     ms
//! }
//!
//! let _g = with_plan(Multithread::workers(2));
//! let fs: Vec<Future<u64>> = vec![future!(nap(400)), future!(nap(10))];
//! let order: Vec<(usize, u64)> = as_completed(fs).map(|(i, v)| (i, v.unwrap())).collect();
//! assert_eq!(order, vec![(1, 10), (0, 400)]); // the short nap first
//!
//! let mut x = FutureVec::new();
//! for ms in [300u64, 1, 2] {
//!     x.push(future!(nap(ms)));
//! }
//! assert_eq!(x[1], 1); // waits for element 1 only
//! assert_eq!(*x.get(2)?, 2);
//! assert_eq!(x.len(), 3);
//! assert_eq!(x.values()?, vec![300, 1, 2]);
//! # Ok::<(), futurize::Error>(())
//! ```
//!
//! ## Other machines: Cluster, Slurm and resources
//! [`Cluster`] runs the same worker processes on other hosts, as R's
//! `plan(cluster, workers = c("n1", "n1", "n2"))`: a host named `k` times
//! runs `k` workers. ssh runs as the user runs it (their `~/.ssh/config`,
//! agent and known hosts), over one connection per host whatever its worker
//! count, and no port is opened anywhere. Where a host does not share the
//! leader's file system, the executable is copied into
//! `~/.cache/futurize/<build id>` there on first use. `FUTURIZE_SSH_COMMAND`
//! replaces `ssh` as `GIT_SSH_COMMAND` does for git. Inside a Slurm
//! allocation the workers start over `srun`, so `FUTURIZE_PLAN=cluster`
//! under `salloc -N3 -n3` runs one worker per task. An unreachable host is
//! an [`Error::Launch`] quoting ssh; a host lost mid-call is an
//! [`Error::WorkerDied`] naming it, and `retries` run its chunks on the
//! other hosts.
//!
//! ```no_run
//! use futurize::prelude::*;
//!
//! fn where_am_i() -> String {
//!     std::env::var("HOSTNAME").unwrap_or_default()
//! }
//!
//! fn main() -> Result<(), futurize::Error> {
//!     plan(
//!         Cluster::hosts(["n1", "n1", "me@n2:2222"])
//!             .identity_file("/home/me/.ssh/id_cluster")
//!             .env(["OMP_NUM_THREADS"]), // ssh forwards no variables: name them
//!     );
//!     let hosts: Vec<String> =
//!         foreach!(i in 0..6u32 => format!("{i} on {}", where_am_i()) %dofuture% retries = 2)?;
//!     println!("{hosts:?}");
//!     Ok(())
//! }
//! ```
//!
//! [`Slurm`] makes every future a batch job and every `foreach!` one job
//! array, as R's future.batchtools: the elements are split over at most as
//! many array tasks as jobs are allowed in flight. Jobs read their work from,
//! and leave their answers in, a registry on the shared file system
//! (`.futurize/`, or `FUTURIZE_REGISTRY`). `resources = (...)` says what a
//! future or each chunk needs; a template carries the site's `#SBATCH`
//! lines and `module load`s, with a line `{{command}}` where the job's
//! command goes. A job that fails, is cancelled or runs out of time or
//! memory is an [`Error::WorkerDied`] with its job id, state, exit code and
//! the end of its log; dropping a future cancels its job.
//!
//! ```no_run
//! use futurize::prelude::*;
//! use futurize::Resources;
//!
//! fn simulate(seed: u64) -> f64 {
//!     seed as f64 / 2.0
//! }
//!
//! fn main() -> Result<(), futurize::Error> {
//!     plan(
//!         Slurm::jobs()
//!             .workers(20) // at most 20 jobs in flight
//!             .template("slurm.tmpl") // or FUTURIZE_SLURM_TEMPLATE
//!             .resources(Resources::new().partition("short").time("1h")), // defaults
//!     );
//!     let seeds: Vec<u64> = (0..1000).collect();
//!     let means: Vec<f64> = foreach!(s in &seeds => simulate(*s) %dofuture%
//!         resources = (cpus = 2, mem = "4G", walltime = "30m"), label = "sims")?;
//!     let big = future!(
//!         simulate(7),
//!         resources = (mem = "64G", time = "4h", sbatch = ["--qos=long", "--account=lab"])
//!     );
//!     println!("{} values, then {}", means.len(), big.value()?);
//!     Ok(())
//! }
//! ```
//!
//! Resources also choose where work runs. A plan may offer several
//! backends, [`Plan::first_fit`] (text form `multiprocess:4|slurm`): each
//! future or call runs on the first whose capacity meets its `resources`
//! (this machine's cores and memory; Slurm's largest node). A request none
//! can meet is an instant [`Error::Resources`] naming it and what each
//! backend offers, on any plan.
//!
//! ```no_run
//! use futurize::prelude::*;
//! use futurize::Plan;
//!
//! fn crunch(n: u64) -> u64 {
//!     n * 2
//! }
//!
//! fn main() -> Result<(), futurize::Error> {
//!     plan(Plan::first_fit([Multiprocess::workers(4).into(), Slurm::jobs().into()]));
//!     let small = future!(crunch(1)); // asks for nothing: the first backend
//!     let large = future!(crunch(2), resources = (cpus = 64, mem = "200G")); // a job
//!     println!("{} {}", small.value()?, large.value()?);
//!     let e = future!(crunch(3), resources = (mem = "100T")).value().unwrap_err();
//!     assert!(matches!(e, futurize::Error::Resources { .. }));
//!     Ok(())
//! }
//! ```

/// `future!(expr, options)`: evaluates `expr` under the plan in force and
/// returns a [`Future`]; collect it with [`Future::value`].
///
/// Options:
/// - `label = "name"`, `lazy = true`, `globals = [a, b]`,
///   `seed = true | <u64>`, `timeout = "10m"` (or a `Duration`);
/// - `stdout = false`: silence what the body prints (by default it is shown
///   at `value()`);
/// - `resources = (cpus = 4, mem = "2G", time = "1h30m", partition = "short",
///   gpus = 1, nodes = 1, ntasks = 5, sbatch = ["--qos=low", "--account=lab"])`:
///   what the future needs, any subset in any order. R batchtools' names
///   work too (`ncpus`, `cpus_per_task`, `memory`, `walltime`). Memory is a
///   number with K, M, G or T (a plain number is megabytes); time is written
///   as for `timeout`. Literal values are checked at compile time; any value
///   may be an expression instead (`cpus = n`), checked before anything is
///   submitted. `resources = r` takes a whole [`Resources`] value. Unset
///   fields take the plan's defaults, and the plan runs the future on the
///   first backend that can meet the request.
///
/// ```
/// use futurize::prelude::*;
/// let xs = vec![1u64, 2, 3];
/// let f = future!(xs.iter().sum::<u64>(), label = "sum", timeout = "1m");
/// assert_eq!(f.value().unwrap(), 6);
/// // Any plan checks what a future asks for against what it offers.
/// let n = 1;
/// let g = future!(xs.len(), resources = (cpus = n, mem = "10M"));
/// assert_eq!(g.value().unwrap(), 3);
/// let r = futurize::Resources::new().mem("100T");
/// let e = future!(xs.len(), resources = r).value().unwrap_err();
/// assert!(matches!(e, futurize::Error::Resources { .. }));
/// ```
pub use futurize_macros::future;

/// `foreach!(x in xs, … => body %dofuture% options)`: runs `body` once per
/// element under the plan (`%do%`: here, one after the other) and returns
/// the values in element order, `Result<_, Error>`.
///
/// A binding is any pattern over any iterable, as in a `for` loop:
/// `(i, x) in xs.iter().enumerate()`, `(x, y) in xs.iter().zip(&ys)`,
/// `i in (0..n).into_iter()`. Several bindings are zipped. A body may itself
/// run a `foreach!` or create futures: on a worker they run under the next
/// level of the plan.
///
/// Options:
/// - `chunk_size = n`, `scheduling = s`, `ordering = "forward" | "reverse" |
///   "random"`, `globals = [a, b]`, `combine = |a, b| ...`,
///   `errors = "stop" | "remove" | "pass"`, `label = "name"`,
///   `seed = true | <u64>`;
/// - `timeout = "10m"` (per element): on worker processes an element over
///   its limit is stopped then; on `sequential` and `multithread`, whose
///   threads cannot be stopped, it is reported as an `Error::Timeout` when
///   it returns;
/// - `retries = n`: run a chunk again when its worker died;
/// - `progress = true`: a bar; [`progress!`] adds steps;
/// - `stdout = false`: silence the bodies (by default what they print is
///   shown in element order when the call returns);
/// - `resources = (cpus = 4, mem = "2G", time = "1h30m", partition = "short",
///   gpus = 1, nodes = 1, ntasks = 5, sbatch = ["--qos=low", "--account=lab"])`:
///   what each chunk (array task) needs, any subset in any order. R
///   batchtools' names work too (`ncpus`, `cpus_per_task`, `memory`,
///   `walltime`). Memory is a number with K, M, G or T (a plain number is
///   megabytes); time is written as for `timeout`. Literal values are
///   checked at compile time; any value may be an expression instead
///   (`cpus = n`), checked before anything is submitted. `resources = r`
///   takes a whole [`Resources`] value. Unset fields take the plan's
///   defaults, and the plan runs the call on the first backend that can
///   meet the request. For example
///   `foreach!(x in &xs => simulate(x) %dofuture% resources = (cpus = 2, mem = "4G", walltime = "30m"))`.
///
/// ```
/// use futurize::prelude::*;
/// let xs = vec![1.0, 2.0, 3.0];
/// let scale = 10.0;
/// let ys: Vec<f64> = foreach!(x in &xs => x * scale %dofuture% label = "scaled")?;
/// assert_eq!(ys, vec![10.0, 20.0, 30.0]);
/// let total: f64 = foreach!(x in &xs => x * 2.0 %dofuture% combine = |a, b| a + b)?;
/// assert_eq!(total, 12.0);
/// let each: Vec<Result<u32, futurize::Error>> =
///     foreach!(i in 0..3u32 => if i == 1 { panic!("one") } else { i } %dofuture% errors = "pass")?;
/// assert!(each[1].is_err() && each[2].as_ref().is_ok_and(|v| *v == 2));
/// let words = vec!["a".to_string(), "bb".to_string()];
/// let numbered: Vec<String> =
///     foreach!((i, w) in words.iter().enumerate() => format!("{i}:{w}") %dofuture%)?;
/// assert_eq!(numbered, vec!["0:a", "1:bb"]);
/// # Ok::<(), futurize::Error>(())
/// ```
pub use futurize_macros::foreach;

/// `#[futurize]` on a function: its iterator pipelines
/// (`xs.iter().map(..).collect()`, `sum`, `fold`, …) run as parallel maps
/// under the plan.
///
/// A pipeline's source is `xs.iter()`, `xs.into_iter()`, a range or
/// `(0..n).into_iter()`, optionally shaped by `enumerate()`, `zip(..)`,
/// `copied()` or `cloned()` (`xs.iter().zip(ys.iter())`); then `map`,
/// `filter_map` or `flat_map`; then `collect`, `sum`, `product`, `fold`,
/// `reduce` or `count`. The first adapter runs in parallel; the rest of the
/// chain runs on its values in element order, in the function.
///
/// Errors: a pipeline's [`Error`] (an element that panicked, a lost worker,
/// a malformed plan) is returned through the function when it returns a
/// `Result<T, E>` written so, with `E: From<futurize::Error>`
/// (`Box<dyn Error>`, `anyhow::Error`, an error type of yours with that
/// `From`), and the pipeline is not inside a closure; otherwise it is a
/// panic of the function whose message says so.
///
/// ```
/// use futurize::prelude::*;
/// #[futurize]
/// fn halves(xs: &[u32]) -> Result<Vec<u32>, Box<dyn std::error::Error>> {
///     let hs: Vec<u32> = xs.iter().map(|x| if x % 2 == 1 { panic!("odd") } else { x / 2 }).collect();
///     Ok(hs)
/// }
///
/// let _g = with_plan(Multithread::workers(2));
/// assert_eq!(halves(&[2, 4]).unwrap(), vec![1, 2]);
/// assert!(halves(&[2, 3]).unwrap_err().to_string().contains("odd"));
/// ```
///
/// `when = condition` is evaluated at each call, first thing in the function
/// (it may use the parameters and `self`, and should only borrow them): the
/// pipelines run in parallel when it holds and as written when not, e.g.
/// `#[futurize(when = xs.len() > 1000)]`. `FUTURIZE_DISABLE=1` in the
/// environment is the global off switch: every plan becomes sequential,
/// whatever `when` says.
///
/// The other options are passed on to each pipeline's map: `chunk_size`,
/// `scheduling`, `ordering`, `label`, `seed`, `timeout`, `retries`,
/// `progress`, `stdout`, and
/// `resources = (cpus = 4, mem = "2G", time = "1h30m", partition = "short",
/// gpus = 1, nodes = 1, ntasks = 5, sbatch = ["--qos=low", "--account=lab"])`:
/// what each chunk of each map needs, any subset in any order. R
/// batchtools' names work too (`ncpus`, `cpus_per_task`, `memory`,
/// `walltime`). Memory is a number with K, M, G or T (a plain number is
/// megabytes); time is written as for `timeout`. Literal values are checked
/// at compile time; any value may be an expression instead (`cpus = n`),
/// checked before anything is submitted. `resources = r` takes a whole
/// [`Resources`] value. Unset fields take the plan's defaults, and the plan
/// runs each map on the first backend that can meet the request.
///
/// ```
/// use futurize::prelude::*;
/// #[futurize(label = "squares")]
/// fn squares(xs: &[u64]) -> Vec<u64> {
///     xs.iter().map(|x| x * x).collect()
/// }
///
/// #[futurize(when = xs.len() >= 3)] // small inputs run as written
/// fn weighted(xs: &[f64]) -> f64 {
///     xs.iter().enumerate().map(|(i, x)| i as f64 * x).sum()
/// }
///
/// #[futurize]
/// fn dot(xs: &[f64], ys: &[f64]) -> f64 {
///     xs.iter().zip(ys.iter()).map(|(x, y)| x * y).sum()
/// }
///
/// #[futurize]
/// fn squares_below(n: u64) -> Vec<u64> {
///     (0..n).into_iter().map(|i| i * i).collect()
/// }
///
/// let _g = with_plan(Multithread::workers(2));
/// assert_eq!(squares(&[1, 2, 3]), vec![1, 4, 9]);
/// assert_eq!(weighted(&[5.0, 1.0]), 1.0);
/// assert_eq!(weighted(&[5.0, 1.0, 2.0]), 5.0);
/// assert_eq!(dot(&[1.0, 2.0], &[3.0, 4.0]), 11.0);
/// assert_eq!(squares_below(4), vec![0, 1, 4, 9]);
/// ```
pub use futurize_macros::futurize;
/// `plan()`, and the plan types in detail: cluster hosts, resources, what a
/// backend offers.
pub use futurize_runtime::cache;
pub use futurize_runtime::plan;
pub use futurize_runtime::plan::Resources;
/// The random-number traits `rng()` implements (`Rng`, `TryRng`), from `rand_core`.
pub use futurize_runtime::rng::ElementRng;
pub use futurize_runtime::{
    AsCompleted, Cluster, Error, Future, FutureVec, HostInfo, HostState, Level, Multiprocess,
    Multithread, Panic, Plan, PlanGuard, Resolvable, Sequential, SessionInfo, Slurm, SlurmPool,
    Values, as_completed, available_cores, available_workers, current_plan, nbr_of_free_workers,
    nbr_of_workers, resolve, resolved, rng, session_info, set_seed, time_left, value, with_plan,
};
pub use rand_core;

#[doc(hidden)]
pub use futurize_runtime::__private;

/// One step of progress inside a `foreach!` body with `progress = true`,
/// like progressr's `p()`: the bar counts the steps and shows the latest
/// message. Outside such a call it does nothing.
///
/// ```
/// use futurize::prelude::*;
/// let sizes = vec![3, 5];
/// let totals: Vec<u32> = foreach!(n in &sizes => {
///     let mut total = 0;
///     for k in 0..*n {
///         total += k;
///         progress!("item {k} of {n}");
///     }
///     progress!();
///     total
/// } %dofuture% progress = true).unwrap();
/// assert_eq!(totals, vec![3, 10]);
/// ```
#[macro_export]
macro_rules! progress {
    () => {
        $crate::__private::__progress_step(::core::option::Option::None)
    };
    ($($arg:tt)+) => {
        $crate::__private::__progress_step(::core::option::Option::Some(::std::format!($($arg)+)))
    };
}

/// Everything a program using futurize needs: `use futurize::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Cluster, Future, FutureVec, Multiprocess, Multithread, Sequential, SessionInfo, Slurm,
        as_completed, available_cores, available_workers, current_plan, foreach, future,
        nbr_of_free_workers, nbr_of_workers, plan, progress, resolve, resolved, rng, session_info,
        set_seed, value, with_plan,
    };
    // The attribute macro, from where it is defined.
    pub use futurize_macros::futurize;
    /// Brings `next_u64()` and friends into scope for `rng()`.
    pub use rand_core::Rng as _;
}
