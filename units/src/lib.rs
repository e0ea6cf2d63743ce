//! The texts futurize reads as quantities: durations such as `"1h30m"`
//! (`timeout = ...`, `resources = (time = ...)`, `FUTURIZE_SILENCE_LIMIT`)
//! and amounts of memory such as `"2G"` (`resources = (mem = ...)`).
//!
//! The invariant: one parser per quantity, used by both sides. The macros
//! check a literal at compile time and the runtime reads the same text (or
//! one built at run time) with the same functions, so a text is accepted,
//! and means the same, on both sides or on neither.
//!
//! ```
//! use std::time::Duration;
//! assert_eq!(futurize_units::parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
//! assert_eq!(futurize_units::parse_memory("2G"), Ok(2 << 30));
//! ```

mod duration;
mod memory;

pub use duration::{
    DURATION_EXAMPLES, DurationError, LONGEST_DAYS, compact_duration, parse_duration,
};
pub use memory::{LARGEST_TIB, MEMORY_EXAMPLES, MemoryError, parse_memory};
