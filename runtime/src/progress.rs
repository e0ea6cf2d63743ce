//! Progress of a `foreach!` with `progress = true`: an `indicatif` bar in
//! the leader, moved as elements finish wherever they run.
//!
//! In this process the bar moves when each element returns; a worker process
//! reports finished elements and `progress!()` steps at most every
//! `REPORT_EVERY` (100 ms; and when its chunk ends), so the bar moves while chunks
//! run, not only when they end.
//!
//! The bar is drawn on stderr when stderr is a terminal. `FUTURIZE_PROGRESS=1`
//! forces it elsewhere (a batch job's log, a pipe), as plain lines paced for
//! logs (every 0.5 s at first, at most every minute in long runs, and the
//! final state); `FUTURIZE_PROGRESS=0` turns it off.

use crate::sync::lock;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use std::cell::RefCell;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// The environment variable that forces the bar on (`1`) or off (`0`).
pub(crate) const PROGRESS_ENV: &str = "FUTURIZE_PROGRESS";

/// One call's bar.
pub(crate) struct Progress {
    bar: ProgressBar,
    /// Drawn in place on a terminal (not as forced lines).
    on_terminal: bool,
    /// The pacing of forced lines.
    lines: Option<Arc<Pace>>,
    steps: AtomicU64,
    message: Mutex<Option<String>>,
}

/// Lines for a log or a pipe: a draw is one line, no cursor movement. A
/// long run should not flood a batch job's log, so lines come at most every
/// 1/20 of the time elapsed so far (between 0.5 s and 60 s apart: about 20
/// lines per doubling of the run time), and the final state always.
#[derive(Debug)]
struct Lines(Arc<Pace>);

#[derive(Debug)]
struct Pace {
    started: Instant,
    last: Mutex<Option<Instant>>,
    /// The next line is written whatever the pace (the call's end).
    force: AtomicBool,
}

impl Pace {
    fn due(&self) -> bool {
        let mut last = lock(&self.last);
        let now = Instant::now();
        let gap = (self.started.elapsed() / 20)
            .clamp(Duration::from_millis(500), Duration::from_secs(60));
        let due = self.force.swap(false, Ordering::Relaxed)
            || last.is_none_or(|t| now.duration_since(t) >= gap);
        if due {
            *last = Some(now);
        }
        due
    }
}

impl TermLike for Lines {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.write_str(s)
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        if s.trim().is_empty() || !self.0.due() {
            return Ok(());
        }
        writeln!(std::io::stderr().lock(), "{s}")
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Where the bar goes: a terminal, forced lines (with their pace), or
/// nowhere.
fn draw_target() -> Option<(ProgressDrawTarget, Option<Arc<Pace>>)> {
    match std::env::var(PROGRESS_ENV).as_deref().map(str::trim) {
        Ok("0" | "false" | "FALSE" | "no") => None,
        Ok("1" | "true" | "TRUE" | "yes") if !std::io::stderr().is_terminal() => {
            let pace = Arc::new(Pace {
                started: Instant::now(),
                last: Mutex::new(None),
                force: AtomicBool::new(false),
            });
            Some((
                ProgressDrawTarget::term_like_with_hz(Box::new(Lines(pace.clone())), 2),
                Some(pace),
            ))
        }
        _ if std::io::stderr().is_terminal() => {
            Some((ProgressDrawTarget::stderr_with_hz(10), None))
        }
        _ => None,
    }
}

impl Progress {
    /// A bar for `total` elements, or `None` when no bar is shown here.
    pub(crate) fn start(total: usize, label: Option<&str>) -> Option<Arc<Progress>> {
        let (target, lines) = draw_target()?;
        let on_terminal = lines.is_none();
        let style = ProgressStyle::with_template(
            "{prefix}[{elapsed_precise}] {bar:30} {pos}/{len} elements, {per_sec}, ETA {eta} {msg}",
        )
        .expect("a valid template");
        let bar = ProgressBar::with_draw_target(Some(total as u64), target)
            .with_style(style)
            .with_prefix(label.map(|l| format!("{l} ")).unwrap_or_default());
        bar.tick();
        let progress = Arc::new(Progress {
            bar,
            on_terminal,
            lines,
            steps: AtomicU64::new(0),
            message: Mutex::new(None),
        });
        let mut shown = lock(&SHOWN);
        shown.retain(|b| b.strong_count() > 0);
        shown.push(Arc::downgrade(&progress));
        Some(progress)
    }

    /// `n` more elements finished.
    pub(crate) fn elements(&self, n: u64) {
        if n > 0 {
            self.bar.inc(n);
        }
    }

    /// Elements counted before whose work was lost (a worker died): they will
    /// be counted again when they run again.
    pub(crate) fn lost(&self, n: u64) {
        if n > 0 {
            self.bar.dec(n);
        }
    }

    /// `n` more `progress!()` steps, with the latest message if any.
    pub(crate) fn steps(&self, n: u64, message: Option<String>) {
        let steps = self.steps.fetch_add(n, Ordering::Relaxed) + n;
        let mut latest = lock(&self.message);
        if message.is_some() {
            *latest = message;
        }
        let text = match latest.as_deref() {
            Some(m) => format!("· {steps} steps · {m}"),
            None => format!("· {steps} steps"),
        };
        self.bar.set_message(text);
    }

    /// The call ended: the final state is drawn (also as a forced line).
    pub(crate) fn finish(&self) {
        if let Some(pace) = &self.lines {
            pace.force.store(true, Ordering::Relaxed);
        }
        self.bar.finish();
    }
}

/// The bars being drawn, so that a relayed log line can clear them first.
static SHOWN: Mutex<Vec<Weak<Progress>>> = Mutex::new(Vec::new());

/// Runs `f` (which writes to the terminal) with the newest bar cleared
/// meanwhile and drawn again after, so lines and bar do not mix.
pub(crate) fn above_bar(f: impl FnOnce()) {
    let newest = SHOWN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .rev()
        .find_map(Weak::upgrade);
    match newest {
        Some(p) if p.on_terminal && !p.bar.is_finished() => p.bar.suspend(f),
        _ => f(),
    }
}

thread_local! {
    /// The bar of the chunk running on this thread, in this process.
    static CURRENT: RefCell<Option<Arc<Progress>>> = const { RefCell::new(None) };
}

/// Runs `f` with `progress!()` on this thread going to `bar`.
pub(crate) fn with_bar<R>(bar: Option<&Arc<Progress>>, f: impl FnOnce() -> R) -> R {
    let Some(bar) = bar else { return f() };
    // Generic over `f` only for the call: the thread-local work is in
    // non-generic functions.
    let _restore = RestoreBar(set_current_bar(Some(bar.clone())));
    f()
}

/// Puts the outer bar back as the scope ends (or a panic passes).
struct RestoreBar(Option<Arc<Progress>>);

impl Drop for RestoreBar {
    fn drop(&mut self) {
        set_current_bar(self.0.take());
    }
}

/// Makes `bar` this thread's bar; returns the one it replaces.
fn set_current_bar(bar: Option<Arc<Progress>>) -> Option<Arc<Progress>> {
    CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), bar))
}

/// What `progress!()` expands to: one step of the running element, with an
/// optional message. Does nothing outside a `foreach!` with `progress = true`.
#[doc(hidden)]
pub fn __progress_step(message: Option<String>) {
    let here = CURRENT.with(|c| c.borrow().clone());
    match here {
        Some(bar) => bar.steps(1, message),
        None => crate::body::step_elsewhere(message),
    }
}
