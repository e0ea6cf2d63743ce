//! Soak (issue 16), the smaller count: 2e4 futures and 200 `foreach!` calls
//! of 1000 elements on Multiprocess(2) (with and without killing workers)
//! and on Multithread(2), in one process; open fds, threads and RSS (ours,
//! and the workers' where the same two serve the whole run) must be flat
//! from the reading at 10 % to those at 50 % and 100 %. The workload and
//! the readings are benches/soak.rs's, which runs the full 1e5 / 1e3.
//!
//! Running futures are dropped or cancelled every 20th step here (every
//! step in the bench): a worker process that replaces a killed one pays
//! for loading its debug info at its first panic under RUST_BACKTRACE=1,
//! which in a debug build is a good part of a second.
//!
//! The tests take turns (a lock): the readings are of the whole process,
//! so nothing else may run in it meanwhile.

#[path = "../benches/soak.rs"]
mod soak;

use soak::{Soak, not_flat, plans, run, table};
use std::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn soak_and_check(which: usize) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (name, plan, kill_every) = plans(20).swap_remove(which);
    let samples = run(
        plan,
        Soak {
            futures: 20_000,
            steps: 200,
            elements: 1000,
            kill_every,
            readings: &[10, 50, 100],
        },
    );
    let shown = table(name, &samples);
    eprintln!("{shown}");
    let problems = not_flat(&samples, kill_every == 0);
    assert!(
        problems.is_empty(),
        "{name} is not flat: {}\n{shown}",
        problems.join("; ")
    );
}

#[test]
fn multiprocess_2_stays_flat() {
    soak_and_check(0);
}

#[test]
fn multiprocess_2_without_kills_keeps_its_workers_and_stays_flat() {
    soak_and_check(1);
}

#[test]
fn multithread_2_stays_flat() {
    soak_and_check(2);
}
