//! The runtime of [futurize](https://docs.rs/futurize): plans, backends,
//! tasks, the codec and the capture machinery the macros expand to.
//!
//! Users depend on the `futurize` facade, which re-exports what is public
//! here together with the macros. Modules, one job each:
//!
//! * [`plan`](mod@plan): plan values and their text form (`FUTURIZE_PLAN`);
//! * `active`: which plan is in force and its backend;
//! * `future`: the [`Future`] handle and [`value`]/[`resolved`]/[`resolve`];
//! * [`capture`]: typed captures, the no-capture check, entry functions;
//! * [`codec`]: values to bytes and back (bincode 2);
//! * [`wire`]: frames and messages between leader and worker processes;
//! * `execute`: running a body and catching its panic;
//! * `backend`: Sequential and Multithread behind one trait;
//! * [`cores`]: what `available_cores()` and `available_workers()` answer.

mod active;
mod backend;
pub mod capture;
pub mod codec;
pub mod cores;
pub mod each;
mod error;
mod execute;
mod future;
mod identity;
pub mod map;
pub mod plan;
pub mod progress;
pub mod relay;
pub mod rng;
pub mod wire;
mod worker;

pub use active::{PlanGuard, current_plan, nbr_of_free_workers, nbr_of_workers, plan, with_plan};
pub use cores::{available_cores, available_workers};
pub use error::Error;
pub use future::{Future, Resolvable, Values, resolve, resolved, value};
pub use plan::{Level, Multiprocess, Multithread, Plan, Sequential};
pub use rng::{ElementRng, rng, set_seed};

/// What the macros expand to. Not a public API: names and signatures here
/// change without notice.
#[doc(hidden)]
pub mod __private {
    pub use crate::capture::__wrap_item;
    pub use crate::capture::{
        __check_capture, __check_not_mut, __check_serialize, __entry_of, __no_capture, __typed,
        __wrap, EntryOf, ViaMutRef, ViaOwned, ViaRef,
    };
    pub use crate::each::{
        __check_each_capture, __chunk_entry_of, __combine_with, __no_capture_each, __no_combine,
        __typed_each, EachViaBorrow, EachViaCopy, EachViaMutRef, EachViaRef,
    };
    pub use crate::execute::TimeLimit;
    pub use crate::future::FutureOptions;
    pub use crate::map::{
        __foreach_collect, __foreach_combine, __foreach_pass, ErrorPolicy, MapOptions, Ordering,
        Sizing,
    };
    pub use crate::progress::__progress_step;
    pub use crate::rng::SeedSpec;
    pub use crate::{
        __relay_dbg, __relay_eprint, __relay_eprintln, __relay_print, __relay_println,
    };

    /// Bytes of captures and elements sent to worker processes so far.
    pub fn __bytes_sent_to_workers() -> u64 {
        crate::backend::bytes_sent()
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

    /// Encodes the captures of a future, naming them in a size error.
    pub fn __encode_captures<T: serde::Serialize>(
        captures: &T,
        label: Option<&str>,
    ) -> Result<Vec<u8>, crate::Error> {
        let what = match label {
            Some(l) => format!("the captures of future \"{l}\""),
            None => "the captures of a future".to_string(),
        };
        crate::codec::encode(captures, &what)
    }
}
