//! Keeping the pages of large allocations between a worker's tasks.
//!
//! glibc serves an allocation above 32 MiB (its largest `mmap` threshold)
//! with fresh `mmap`ed memory and unmaps it when freed: a worker decoding a
//! 100 MB capture into a `Vec` faulted in and zeroed 100 MB of new pages
//! for every task, which cost as much as copying the bytes. Once a worker
//! receives a payload of at least [`LARGE`] bytes, or makes a value that
//! large, it tells glibc to take
//! every allocation from its heap and to keep freed memory there, so the
//! next large capture lands in pages already present. Those pages are given
//! back ([`libc::malloc_trim`]) once the worker has run no task for
//! [`KEEP_PAGES_FOR`], as the leader's inbox gives back its own.
//!
//! Only under glibc, and only for its allocator: a program with another
//! global allocator is not affected (nor helped).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Payloads from this size on switch the allocator's settings.
pub(super) const LARGE: usize = 32 << 20;

/// How long an idle worker keeps freed pages.
pub(super) const KEEP_PAGES_FOR: Duration = Duration::from_secs(2);

/// Where a worker that keeps pages is.
#[derive(Clone, Copy, PartialEq, Debug)]
enum State {
    /// Pages are not kept (no large payload yet): glibc's own settings.
    Off,
    /// A task runs.
    Busy,
    /// Idle since then, with pages kept.
    Idle(Instant),
    /// Idle, and the pages were given back.
    Trimmed,
}

static STATE: Mutex<State> = Mutex::new(State::Off);

/// Called with the size of each payload before its task runs.
pub(super) fn task_starts(payload: usize) {
    let mut state = crate::sync::lock(&STATE);
    if *state != State::Off {
        *state = State::Busy;
    } else if payload >= LARGE && keep_freed_pages() {
        *state = State::Busy;
        start_trimmer();
    }
}

/// Called with the size of each task's value once it is made: a large
/// value keeps pages from then on, as a large payload does, so that the next
/// task's value is made in pages already present.
pub(super) fn value_made(len: usize) {
    let mut state = crate::sync::lock(&STATE);
    if *state == State::Off && len >= LARGE && keep_freed_pages() {
        *state = State::Idle(Instant::now());
        start_trimmer();
    }
}

/// Called when a task has ended.
pub(super) fn task_ended() {
    let mut state = crate::sync::lock(&STATE);
    if *state == State::Busy {
        *state = State::Idle(Instant::now());
    }
}

/// Gives the pages back when the worker has been idle long enough; whether
/// it did.
fn trim_if_idle() -> bool {
    let mut state = crate::sync::lock(&STATE);
    match *state {
        State::Idle(since) if since.elapsed() >= KEEP_PAGES_FOR => {
            *state = State::Trimmed;
            drop(state);
            trim();
            true
        }
        _ => false,
    }
}

/// Below this size allocations come from the heap from a worker's start,
/// and up to [`KEPT_ALWAYS`] of freed memory stays there. glibc's largest
/// mmap threshold: setting a tunable turns off glibc's own adaptation of
/// the threshold to the sizes freed, so anything between a smaller value
/// and 32 MiB (a 10 MB capture) would get fresh pages on every task.
const FROM_HEAP_BELOW: usize = 32 << 20;
const KEPT_ALWAYS: usize = 32 << 20;

/// Called once as the worker starts: allocations below 32 MiB (a chunk's
/// elements and values, a capture of a few MB) come from the heap and their pages are kept for
/// the next chunk, instead of glibc's default of mapping anything above
/// 128 KiB afresh and giving the top of its heap back past twice that
/// (which made a chunk of 50 000 elements fault in and zero its buffers
/// each time). At most [`KEPT_ALWAYS`] stays kept this way.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(super) fn worker_starts() {
    // SAFETY: mallopt only changes the allocator's tunables, under its own
    // lock; both values are within their ranges (the mmap threshold at most
    // 32 MiB on 64-bit glibc). A refusal leaves glibc's defaults.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, FROM_HEAP_BELOW as libc::c_int);
        libc::mallopt(libc::M_TRIM_THRESHOLD, KEPT_ALWAYS as libc::c_int);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(super) fn worker_starts() {}

/// Tells glibc to serve every allocation from its heap and not to give
/// freed memory back by itself; whether it took the settings.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_pages() -> bool {
    // SAFETY: mallopt only changes the allocator's tunables, under its own
    // lock; any value is valid for these two (0 mmaps: allocations come
    // from the heap, which still falls back to mmap when it cannot grow).
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX) == 1
            && libc::mallopt(libc::M_MMAP_MAX, 0) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_pages() -> bool {
    false
}

/// Starts the thread that gives freed pages back once the worker is idle.
fn start_trimmer() {
    let _ = std::thread::Builder::new()
        .name("futurize-trim".into())
        .spawn(|| {
            loop {
                std::thread::sleep(KEEP_PAGES_FOR / 4);
                trim_if_idle();
            }
        });
}

/// Gives the heap's free pages back to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes the allocator's locks itself and only
    // releases memory no allocation holds.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        *crate::sync::lock(&STATE)
    }

    // The settings are the whole process's: this is the only unit test that
    // changes them (what they do to a worker's RSS is checked in
    // tests/big_captures.rs, on a real worker).
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn large_payloads_keep_freed_pages_until_the_worker_is_idle() {
        task_starts(LARGE - 1);
        assert_eq!(state(), State::Off, "small: unchanged");
        task_ended();
        assert_eq!(state(), State::Off);
        task_starts(LARGE);
        assert_eq!(state(), State::Busy);
        task_ended();
        assert!(matches!(state(), State::Idle(_)));
        assert!(!trim_if_idle(), "kept while recently used");
        *crate::sync::lock(&STATE) = State::Idle(Instant::now() - KEEP_PAGES_FOR);
        // (The trimmer thread may come first.)
        trim_if_idle();
        assert_eq!(state(), State::Trimmed);
        assert!(!trim_if_idle(), "once");
        task_starts(0);
        assert_eq!(state(), State::Busy, "still on for small payloads");
    }
}
