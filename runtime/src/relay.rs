//! Relay of what bodies print: captured where the body runs, shown by the
//! leader when the values are collected, in element order.
//!
//! Two ways of capturing, one result:
//!
//! * In this process (Sequential, Multithread, `%do%`): the macros rewrite
//!   `print!`, `println!`, `eprint!`, `eprintln!` and `dbg!` in a body into
//!   [`__print`], which appends to the running chunk's or future's buffer
//!   (a thread-local sink). Output of functions the body calls goes straight
//!   to the terminal: a thread cannot take over the process's stdout.
//! * In a worker process: file descriptors 1 and 2 point at two capture
//!   files while tasks run (files the leader created, so it can read a dead
//!   end of a dead worker's stderr; memfds otherwise), so everything a task writes
//!   (its body, the functions it calls, C code) is captured. The rewritten
//!   macros write to the real stdout there, so their text keeps its place
//!   among the rest.
//!
//! `stdout = false` drops the text as it comes instead of keeping it.
//!
//! Either way a task's capture is an [`Output`]: its stdout and stderr
//! bytes. A `foreach!` keeps one per chunk and relays them in element order
//! when it returns; a future relays its own when its value is collected. A
//! relay inside a body that is itself captured goes into that capture, so
//! nested futures' output reaches the top leader in order.

pub use crate::protocol::Output;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::OnceLock;

/// A copy of this process's stderr from before any capture (set by a worker
/// process before it points fd 2 at a capture file).
static ORIGINAL_STDERR: OnceLock<OwnedFd> = OnceLock::new();

/// Keeps `fd` as this process's stderr from before any capture.
pub(crate) fn keep_original_stderr(fd: OwnedFd) {
    let _ = ORIGINAL_STDERR.set(fd);
}

/// Where a process started from here (a nested worker) should write its
/// stderr: the worker's own stderr, never a capture file that would mix the
/// child's text into later tasks' output. `None` outside workers that
/// capture.
pub(crate) fn original_stderr() -> Option<std::io::Result<OwnedFd>> {
    ORIGINAL_STDERR.get().map(|fd| fd.try_clone())
}

thread_local! {
    static SINK: RefCell<Option<Output>> = const { RefCell::new(None) };
    /// The running capture drops what it gets (`stdout = false`).
    static DISCARD: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with what the body's print macros write going to a buffer of
/// this thread; returns the buffer with `f`'s value, or nothing when `keep`
/// is false (`stdout = false`: the output is silenced, as R's
/// `stdout = FALSE` does).
pub(crate) fn capture<R>(keep: bool, f: impl FnOnce() -> R) -> (R, Output) {
    // Generic over `f` only for the call: the thread-local work is in
    // non-generic functions, shared by every caller.
    let restore = Restore(Some(begin_capture(keep)));
    let value = f();
    (value, restore.end(keep))
}

/// What a capture replaced on this thread: the outer sink and its
/// discard flag.
type Outer = (Option<Output>, bool);

/// Puts the outer sink back, when the capture ends or as a panic passes.
struct Restore(Option<Outer>);

impl Restore {
    fn end(mut self, keep: bool) -> Output {
        let outer = self.0.take().expect("restored once");
        end_capture(keep, outer)
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(outer) = self.0.take() {
            let _ = end_capture(false, outer);
        }
    }
}

/// Starts a capture on this thread; returns what it replaced.
fn begin_capture(keep: bool) -> Outer {
    let outer = SINK.with(|s| s.borrow_mut().replace(Output::default()));
    let outer_discard = DISCARD.with(|d| d.replace(!keep));
    (outer, outer_discard)
}

/// Ends a capture: puts `outer` back and returns what was captured (nothing
/// unless `keep`).
fn end_capture(keep: bool, (outer, outer_discard): Outer) -> Output {
    DISCARD.with(|d| d.set(outer_discard));
    let captured = SINK.with(|s| std::mem::replace(&mut *s.borrow_mut(), outer));
    if !keep {
        return Output::default();
    }
    captured.unwrap_or_default()
}

/// Shows a capture where this thread's output goes now: into the capture of
/// an enclosing body, else to this process's stdout and stderr.
pub(crate) fn relay(output: &Output) {
    if output.is_empty() {
        return;
    }
    let forwarded = SINK.with(|s| match s.borrow_mut().as_mut() {
        Some(_) if DISCARD.with(Cell::get) => true,
        Some(sink) => {
            sink.stdout.extend_from_slice(&output.stdout);
            sink.stderr.extend_from_slice(&output.stderr);
            true
        }
        None => false,
    });
    if forwarded {
        return;
    }
    // Through `print!` when the text is UTF-8, so that a test harness that
    // captures a test's output captures this too.
    show(&output.stdout, |text| print!("{text}"), std::io::stdout());
    let _ = std::io::stdout().flush();
    show(&output.stderr, |text| eprint!("{text}"), std::io::stderr());
}

/// Writes `bytes` with `print` when they are text, else raw to `stream`.
fn show(bytes: &[u8], print: impl Fn(&str), mut stream: impl Write) {
    match std::str::from_utf8(bytes) {
        Ok(text) => print(text),
        Err(_) => {
            let _ = stream.write_all(bytes);
        }
    }
}

/// Which stream a rewritten print macro writes to.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub enum Stream {
    /// `print!`, `println!`.
    Stdout,
    /// `eprint!`, `eprintln!`.
    Stderr,
}

/// What `print!` and friends become inside a body: text to the running
/// capture, or to the real stream when nothing captures on this thread.
#[doc(hidden)]
pub fn __print(stream: Stream, args: fmt::Arguments<'_>, newline: bool) {
    if SINK.with(|s| s.borrow().is_some()) {
        if DISCARD.with(Cell::get) {
            return;
        }
        // Format first: a `Display` may print too (or collect a future,
        // which relays), and the sink is not borrowed meanwhile.
        let mut text = args.to_string();
        if newline {
            text.push('\n');
        }
        SINK.with(|s| {
            if let Some(sink) = s.borrow_mut().as_mut() {
                match stream {
                    Stream::Stdout => sink.stdout.extend_from_slice(text.as_bytes()),
                    Stream::Stderr => sink.stderr.extend_from_slice(text.as_bytes()),
                }
            }
        });
        return;
    }
    // As std's macros do: a failed write to stdout is a panic there too.
    fn write_line(
        mut to: impl Write,
        args: fmt::Arguments<'_>,
        newline: bool,
    ) -> std::io::Result<()> {
        to.write_fmt(args)?;
        if newline {
            to.write_all(b"\n")?;
        }
        Ok(())
    }
    let (result, name) = match stream {
        Stream::Stdout => (
            write_line(std::io::stdout().lock(), args, newline),
            "stdout",
        ),
        Stream::Stderr => (
            write_line(std::io::stderr().lock(), args, newline),
            "stderr",
        ),
    };
    if let Err(e) = result {
        panic!("failed printing to {name}: {e}");
    }
}

/// `print!` inside a body.
#[doc(hidden)]
#[macro_export]
macro_rules! __relay_print {
    ($($arg:tt)*) => {
        $crate::relay::__print($crate::relay::Stream::Stdout, ::core::format_args!($($arg)*), false)
    };
}

/// `println!` inside a body.
#[doc(hidden)]
#[macro_export]
macro_rules! __relay_println {
    () => {
        $crate::relay::__print($crate::relay::Stream::Stdout, ::core::format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::relay::__print($crate::relay::Stream::Stdout, ::core::format_args!($($arg)*), true)
    };
}

/// `eprint!` inside a body.
#[doc(hidden)]
#[macro_export]
macro_rules! __relay_eprint {
    ($($arg:tt)*) => {
        $crate::relay::__print($crate::relay::Stream::Stderr, ::core::format_args!($($arg)*), false)
    };
}

/// `eprintln!` inside a body.
#[doc(hidden)]
#[macro_export]
macro_rules! __relay_eprintln {
    () => {
        $crate::relay::__print($crate::relay::Stream::Stderr, ::core::format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::relay::__print($crate::relay::Stream::Stderr, ::core::format_args!($($arg)*), true)
    };
}

/// `dbg!` inside a body: as std's, to stderr through the capture.
#[doc(hidden)]
#[macro_export]
macro_rules! __relay_dbg {
    () => {
        $crate::relay::__print(
            $crate::relay::Stream::Stderr,
            ::core::format_args!("[{}:{}:{}]", ::core::file!(), ::core::line!(), ::core::column!()),
            true,
        )
    };
    ($value:expr $(,)?) => {
        match $value {
            value => {
                $crate::relay::__print(
                    $crate::relay::Stream::Stderr,
                    ::core::format_args!(
                        "[{}:{}:{}] {} = {:#?}",
                        ::core::file!(),
                        ::core::line!(),
                        ::core::column!(),
                        ::core::stringify!($value),
                        &value
                    ),
                    true,
                );
                value
            }
        }
    };
    ($($value:expr),+ $(,)?) => {
        ($($crate::__relay_dbg!($value)),+,)
    };
}
