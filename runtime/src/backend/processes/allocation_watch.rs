//! The watching thread of a pool's Slurm allocations
//! (`allocations.rs`): it follows every allocation's state in squeue and
//! keeps the three rules there (grow a replacement, give back, drain).

use super::allocations::{Allocation, FIRST_CONTACT, Phase, Shared};
use crate::backend::slurm::allocation;
use crate::sync::lock;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long a pending allocation nobody waits for is kept before it is
/// cancelled.
const UNWANTED_AFTER: Duration = Duration::from_secs(5);

/// How long a running allocation with no worker is kept (a worker may be
/// on its way) before it is given back.
const EMPTY_FOR: Duration = Duration::from_millis(500);

/// The watching thread: follows every allocation's state in Slurm and keeps
/// the three rules (see the module's documentation); ends with the pool.
pub(super) fn watch(shared: std::sync::Weak<Shared>) {
    loop {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let pending = look(&shared);
        drop(shared);
        std::thread::sleep(if pending {
            Duration::from_millis(100)
        } else {
            Duration::from_millis(500)
        });
    }
}

/// What one look knows beside each allocation's own state.
struct Look<'a> {
    shared: &'a Shared,
    now: Instant,
    /// No caller has waited for a while: a pending allocation is not needed.
    unwanted: bool,
    /// A draining allocation still runs work: an empty one is its
    /// replacement.
    draining_with_work: bool,
}

/// What one look decided about one allocation beyond its own state.
#[derive(Default)]
struct Decided {
    /// Its job is to be cancelled.
    cancel: bool,
    /// It began to drain while running work: a replacement is asked for.
    replace: bool,
}

/// One look at the allocations; whether one is pending.
fn look(shared: &Shared) -> bool {
    shared.holders.heartbeat();
    if shared.wanted() {
        *lock(&shared.last_wanted) = Instant::now();
    }
    let jobs: Vec<String> = lock(&shared.allocations)
        .iter()
        .filter(|a| !matches!(a.phase, Phase::Ended(_)))
        .map(|a| a.job.clone())
        .collect();
    if jobs.is_empty() {
        return false;
    }
    let seen = match allocation::seen(&jobs) {
        Ok(s) => s,
        Err(why) => {
            log::debug!("futurize: the pool's watch: {why}");
            return true;
        }
    };
    let mut list = lock(&shared.allocations);
    let look = Look {
        shared,
        now: Instant::now(),
        unwanted: lock(&shared.last_wanted).elapsed() >= UNWANTED_AFTER,
        draining_with_work: list.iter().any(|a| {
            a.retired.load(Ordering::Acquire)
                && matches!(a.phase, Phase::Running { .. })
                && a.seats.load(Ordering::Acquire) > 0
        }),
    };
    let mut cancel = Vec::new();
    let mut replace = 0usize;
    for a in list.iter_mut() {
        let decided = follow(a, seen.get(&a.job), &look);
        if decided.cancel {
            cancel.push(a.job.clone());
        }
        replace += usize::from(decided.replace);
    }
    // Ended allocations are kept for the starts that wait on them, then
    // forgotten in bulk.
    if list.len() > 4 * shared.limit + 16 {
        list.retain(|a| !matches!(a.phase, Phase::Ended(_)));
    }
    let held = list.iter().filter(|a| a.takes_work()).count();
    for _ in 0..replace.min(shared.limit.saturating_sub(held)) {
        match shared.holders.submit(FIRST_CONTACT) {
            Ok(held) => list.push(Allocation::asked(held)),
            Err(e) => log::warn!("futurize: a replacement allocation: {e}"),
        }
    }
    let pending = list.iter().any(|a| matches!(a.phase, Phase::Pending));
    shared.changed.notify_all();
    drop(list);
    allocation::cancel(&cancel);
    pending
}

/// Brings `a` up to what squeue says of it (`seen`) and keeps the rules.
fn follow(a: &mut Allocation, seen: Option<&allocation::Seen>, look: &Look<'_>) -> Decided {
    if matches!(a.phase, Phase::Ended(_)) {
        return Decided::default();
    }
    let Some(s) = seen else {
        // Just submitted: squeue may not show it yet.
        if look.now.duration_since(a.asked) >= Duration::from_secs(5) {
            a.end("Slurm no longer knows it");
        }
        return Decided::default();
    };
    if allocation::has_ended(&s.state) {
        a.end(format!("it ended {}", s.state));
        return Decided::default();
    }
    match a.phase {
        Phase::Pending if s.state == "RUNNING" => {
            let node = s.node.clone().unwrap_or_else(|| "localhost".into());
            log::debug!("futurize: pool allocation {} runs on {node}", a.job);
            a.phase = Phase::Running {
                node,
                deadline: s.left.map(|l| (look.now + l, look.shared.margin(l))),
                empty_since: None,
            };
            Decided::default()
        }
        Phase::Pending if look.unwanted && !look.draining_with_work => {
            log::debug!("futurize: pool allocation {} no longer needed", a.job);
            a.end("no longer needed: cancelled");
            Decided {
                cancel: true,
                ..Decided::default()
            }
        }
        Phase::Running { .. } => keep_running(a, look),
        Phase::Pending | Phase::Ended(_) => Decided::default(),
    }
}

/// The rules of a running allocation: drain near its time limit, give it
/// back once it has had no worker for a while.
fn keep_running(a: &mut Allocation, look: &Look<'_>) -> Decided {
    let Phase::Running {
        deadline,
        empty_since,
        ..
    } = &mut a.phase
    else {
        return Decided::default();
    };
    let mut decided = Decided::default();
    let seats = a.seats.load(Ordering::Acquire);
    if let Some((end, margin)) = *deadline
        && !a.retired.load(Ordering::Acquire)
        && end.saturating_duration_since(look.now) <= margin
    {
        log::info!(
            "futurize: pool allocation {} is near its time limit: it takes no more work",
            a.job
        );
        a.retired.store(true, Ordering::Release);
        decided.replace = seats > 0;
    }
    if seats > 0 {
        *empty_since = None;
        return decided;
    }
    let since = *empty_since.get_or_insert(look.now);
    // An empty allocation is kept while a draining one still runs work: it
    // is that one's replacement.
    let idle_enough = look.now.duration_since(since) >= EMPTY_FOR && !look.draining_with_work;
    if a.retired.load(Ordering::Acquire) || idle_enough {
        log::debug!("futurize: pool allocation {} given back", a.job);
        // Given back: its agent's link closes and the holding loop ends the
        // job; with no agent ever, the loop would wait for one.
        decided.cancel = !a.end("given back");
    }
    decided
}
