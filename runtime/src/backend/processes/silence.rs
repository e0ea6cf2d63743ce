//! Noticing workers that stop answering: a stopped or frozen process, a
//! frozen host, a cut network. Every worker says it is alive every
//! `HEARTBEAT_EVERY`, idle or busy; one thread per pool looks at how long
//! each has been silent, and kills one silent past its limit. Its reader
//! then reports the task it ran as `WorkerDied`, "not responding", naming
//! the elements, and `retries` run them again elsewhere.
//!
//! The limit is `FUTURIZE_SILENCE_LIMIT` (default 30 s, read and checked in
//! `protocol/environment.rs`); for a task with a shorter `timeout`, it is
//! that timeout plus a second, so that the leader enforces the limit itself
//! whatever the worker does (a stopped worker's own timer stops with it).

use super::{Pool, Worker};
use crate::protocol::HEARTBEAT_EVERY;
use crate::sync::lock;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// The limit for a worker with no time-limited task: checked (at least
/// three heartbeats, at most 365 days) where the plan's backend started.
pub(super) fn default_limit() -> Duration {
    crate::protocol::environment::SILENCE_LIMIT.value()
}

/// The silence limit of a worker running a task limited to `timeout`.
pub(super) fn limit_for(timeout: Option<Duration>) -> Duration {
    match timeout {
        // Silence past the default limit is never normal; a timeout only
        // makes the limit shorter.
        Some(t) => t
            .saturating_add(Duration::from_secs(1))
            .min(default_limit())
            .max(HEARTBEAT_EVERY * 3),
        None => default_limit(),
    }
}

/// Starts the pool's watcher; it ends with the pool.
pub(super) fn watch(shared: &Arc<Pool>) {
    let weak = Arc::downgrade(shared);
    let _ = std::thread::Builder::new()
        .name("futurize-silence".into())
        .spawn(move || run(weak));
}

fn run(shared: Weak<Pool>) {
    loop {
        std::thread::sleep(HEARTBEAT_EVERY);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let workers: Vec<Arc<Worker>> = lock(&shared.workers)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        shared.end_idle();
        drop(shared);
        for w in workers {
            check(&w);
            release_shared_pages(&w);
        }
    }
}

/// Kills `w` when it has been silent past its limit.
fn check(w: &Worker) {
    let silent = lock(&w.last_heard).elapsed();
    let limit = lock(&w.running).as_ref().map_or(default_limit(), |r| {
        limit_for(r.settings.timeout.as_ref().map(|t| t.limit))
    });
    if silent <= limit {
        return;
    }
    let mut why = lock(&w.unresponsive);
    if why.is_some() {
        return;
    }
    *why = Some(format!(
        "not responding: nothing heard from it for {:.1}s (limit {:.1}s), so it was killed",
        silent.as_secs_f64(),
        limit.as_secs_f64()
    ));
    drop(why);
    log::warn!(
        "futurize: worker {} is not responding; killing it",
        w.describe()
    );
    w.killed.store(true, std::sync::atomic::Ordering::Release);
    lock(&w.process).kill();
}

/// Gives back the pages of an idle worker's inbox and outbox not used for
/// a while. `running` is held throughout, so no task can be dispatched
/// meanwhile (and an idle worker writes no answer into its outbox).
fn release_shared_pages(w: &Worker) {
    let running = lock(&w.running);
    if running.is_some() {
        return;
    }
    if let Ok(mut inbox) = w.inbox.try_lock()
        && let Some(inbox) = inbox.as_mut()
    {
        inbox.release_if_idle();
    }
    w.outbox.release_if_idle();
}

/// Notes that `w` was heard from now.
pub(super) fn heard(w: &Worker) {
    *lock(&w.last_heard) = Instant::now();
}
