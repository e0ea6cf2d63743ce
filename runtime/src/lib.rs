//! The runtime of [futurize](https://docs.rs/futurize): plans, backends,
//! tasks, the wire protocol and the capture machinery the macros expand to.
//!
//! Users depend on the `futurize` facade, which re-exports what is public
//! here together with the macros. The modules, one job each, in three sides
//! (docs/design.md draws how a future and a `foreach!` chunk travel through
//! them):
//!
//! Shared by everything:
//! * `error`: the one [`Error`] type, and [`Panic`];
//! * [`plan`](mod@plan): plan values and their text form (`FUTURIZE_PLAN`);
//! * [`cores`]: what `available_cores()` and `available_workers()` answer;
//! * [`rng`]: random streams per element;
//! * `sync`: the one poison-tolerant lock helper;
//! * `protocol`: what both sides of the process boundary agree on: frames
//!   and messages ([`wire`]), values as bytes ([`codec`]), build identity,
//!   environment variable names, log levels;
//! * [`body`]: running user code wherever it stands: captures
//!   ([`body::capture`], [`body::foreach_capture`]), chunks of elements ([`body::chunk`]),
//!   panics and time limits;
//! * [`relay`]: what bodies print, captured and shown in order;
//! * `settings`: [`Settings`](__private::Settings), how one future or chunk runs, the
//!   one shape of its options from the macro to the worker.
//!
//! The leader side:
//! * `active`: which plan is in force, and its backend;
//! * `future`: the [`Future`] handle; `many_futures`: [`value`]/[`resolved`]/[`resolve`]
//!   on one future or many; `collect`: [`as_completed`] and [`FutureVec`];
//! * `attr_errors`: what a `#[futurize]` function does with a pipeline's error;
//! * `session`: [`session_info`]; `trace`: `FUTURIZE_TRACE`;
//! * [`map`]: the `foreach!` engine (chunking, error policies, results in
//!   order);
//! * `backend`: Sequential, Multithread, Multiprocess, Cluster, Slurm and
//!   first-fit plans behind one trait; worker processes start through
//!   launchers (local, or a host agent over ssh or srun) and talk over
//!   links; Slurm jobs read and answer through files in a registry;
//! * `progress`: the progress bar of a call.
//!
//! Only what the `futurize` facade re-exports is this crate's API; the
//! modules that macro-generated code and tests reach (`body`, `map`, `relay`,
//! `cores`, `wire`, `codec`, `__private`) are public but hidden.
//!
//! The worker side:
//! * `worker`: the serve loop of a worker process (and of a Slurm job,
//!   whose channel is a pair of files);
//! * `startup`: the take-over before `main` that hands a process started as
//!   a worker, a host agent or a job to its loop.

mod active;
mod attr_errors;
mod backend;
#[doc(hidden)]
pub mod body;
pub mod cache;
mod collect;
#[doc(hidden)]
pub mod cores;
mod error;
mod future;
mod many_futures;
#[doc(hidden)]
pub mod map;
pub mod plan;
mod progress;
mod protocol;
#[doc(hidden)]
pub mod relay;
pub mod rng;
mod session;
mod settings;
mod startup;
mod sync;
mod trace;
mod worker;

pub use active::{
    DISABLE_ENV, PlanGuard, current_plan, nbr_of_free_workers, nbr_of_workers, plan, with_plan,
};
pub use body::time_left;
pub use collect::{AsCompleted, FutureVec, as_completed};
pub use cores::{available_cores, available_workers};
pub use error::{Error, Panic};
pub use future::Future;
pub use many_futures::{Resolvable, Values, resolve, resolved, value};
pub use plan::{Cluster, Level, Multiprocess, Multithread, Plan, Sequential, Slurm, SlurmPool};
#[doc(hidden)]
pub use protocol::{codec, wire};
pub use rng::{ElementRng, rng, set_seed};
pub use session::{HostInfo, HostState, SessionInfo, session_info};

/// What the macros expand to. Not a public API: names and signatures here
/// change without notice.
#[doc(hidden)]
pub mod __private {
    pub use crate::attr_errors::{ErrorInto, ErrorViaFrom, ErrorViaPanic};
    pub use crate::body::capture::{__element_rebuilt, __wrap_item};
    // Re-exported so that rustc names them by their short names when a
    // check fails ("the trait `NotShared<Shared>` is not implemented"),
    // not by the runtime's module path.
    pub use crate::body::capture::sendable::{
        Borrowed, Data, FromBytes, Handle, IntoBytes, NoBorrowInside, NotHandle, NotPointer,
        NotShared, Opaque, Pointer, SendsBack, Shared,
    };
    pub use crate::body::capture::{
        __checked, __encode_captures_of, __entry_of, __no_capture, __not_mut, __typed, __wrap,
        EntryOf, TagView, ViaMutRef, ViaOwned, ViaRef,
    };
    pub use crate::body::capture::{Exclusive, NotExclusive, NotMutRef};
    pub use crate::body::chunk::{__chunk_entry_of, __combine_with, __no_combine};
    pub use crate::body::foreach_capture::{
        __no_capture_each, __typed_each, EachViaBorrow, EachViaBulk, EachViaCopy, EachViaMutRef,
        EachViaRef,
    };
    pub use crate::cache::{CacheMode, CacheSpec, CallSite};
    pub use crate::future::{__future_of, FutureOptions};
    pub use crate::map::{
        __elements_probe, __foreach_collect, __foreach_combine, __foreach_pass, ElementsViaIndex,
        ElementsViaIter, ErrorPolicy, MapOptions, Ordering, Sizing,
    };
    pub use crate::plan::Resources;
    pub use crate::progress::__progress_step;
    pub use crate::rng::SeedSpec;
    pub use crate::settings::Settings;
    pub use crate::settings::{Escalation, TimeLimit};
    pub use crate::{
        __relay_dbg, __relay_eprint, __relay_eprintln, __relay_print, __relay_println,
    };

    /// The generator of element `index` of the calls with `seed = seed`, for
    /// tests that check draws against the streams themselves.
    pub fn __stream_generator(seed: u64, index: u64) -> rand_xoshiro::Xoshiro256PlusPlus {
        crate::rng::Streams::from_seed(seed).generator(index)
    }

    /// Bytes of captures and elements sent to worker processes so far.
    pub fn __bytes_sent_to_workers() -> u64 {
        crate::backend::bytes_sent()
    }

    /// Runs the handshake code of both sides on arbitrary bytes, for the
    /// fuzzer (fuzz/fuzz_targets/handshake.rs): what a worker makes of
    /// `worker_reads` as its channel from the leader (the handshake, then
    /// every frame read as the serve loop reads them; with `greeted`, after
    /// the hello a leader of this build sends, so that the frames after it
    /// are reached), and what a leader makes of `leader_reads` as a
    /// worker's answer. Nothing runs.
    pub fn __fuzz_handshake(
        worker_reads: &mut dyn std::io::Read,
        leader_reads: &mut dyn std::io::Read,
        greeted: bool,
        limit: u64,
    ) -> (String, String) {
        use std::io::Read as _;
        let mut hello = Vec::new();
        if greeted {
            let message = crate::protocol::wire::ToWorker::hello("sequential".into());
            // Under a limit too small for a hello, the worker reads the
            // bytes alone.
            if crate::protocol::wire::write_message(&mut hello, &message, &[], limit).is_err() {
                hello.clear();
            }
        }
        let reads = std::io::Cursor::new(hello).chain(worker_reads);
        let worker = crate::worker::read_as_worker(&mut std::io::BufReader::new(reads), limit);
        let answer = crate::protocol::wire::read_message(&mut &mut *leader_reads, limit);
        let leader = format!("{:?}", crate::backend::check_handshake_answer(answer));
        (worker, leader)
    }

    /// Stands in for a `future!` whose input has a compile error, so the
    /// user sees that one error and not a cascade.
    pub fn __unreachable_future<T>() -> crate::Future<T> {
        unreachable!("emitted only next to a compile error")
    }

    /// Stands in for a `foreach!` whose input has a compile error.
    pub fn __unreachable_result<T>() -> Result<T, crate::Error> {
        unreachable!("emitted only next to a compile error")
    }
}
