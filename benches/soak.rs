//! Soak (issue 16): many futures and `foreach!` calls in one process, on
//! `Multiprocess::workers(2)` and on `Multithread::workers(2)`, with open
//! fds, threads and resident memory (ours and the worker processes') read
//! from /proc as the run goes. They must stay flat.
//!
//! The run is `steps` rounds of the same mix, so every stretch of it does
//! the same work and a reading at 10 % compares with one at 100 %:
//!
//! - a batch of futures (`futures / steps` of them, 100 in the full soak):
//!   most are created and collected with `value()`; a few print (relayed
//!   at `value()`), print under `stdout = false`, or panic; some are dropped
//!   uncollected, some cancelled (lazy, or running), some lazy (collected,
//!   polled with `resolved()` first, or dropped unstarted). Every
//!   `kill_every` steps two are dropped and one is cancelled while running,
//!   which kills a worker process (a new one starts on demand) or retires
//!   a thread; in other steps they are resolved first;
//! - one `foreach!` over `elements` (1000) elements, in turn: plain;
//!   `errors = "pass"` with one panicking element; `seed = 1` drawing from
//!   `rng()` (the same values every time); a call whose element 0 prints,
//!   then one whose every element prints under `stdout = false`;
//!   `progress = true` with `progress!()` steps, `timeout`, `retries` and a
//!   label; `combine` with `chunk_size = 50` and `ordering = "random"`.
//!
//! Readings are taken once before the first step (the pool not started)
//! and after given percentages of the steps, each after a settling pause
//! and a two-element call that brings the pool back to full strength.
//!
//! Three soaks: Multiprocess(2) with workers killed every step;
//! Multiprocess(2) without kills, where the same two worker processes serve
//! the whole run, so that their memory is comparable from reading to
//! reading; Multithread(2) with threads retired every step.
//!
//! `cargo bench -p futurize --bench soak` runs the full soak (1e5 futures
//! and 1e3 calls each) and prints a table per soak (numbers go to
//! docs/benchmarks.md, "Soak (issue 16)"); it exits non-zero when a figure
//! is not flat. `cargo test --benches` runs a tiny count once, without the
//! check. tests/soak.rs runs a smaller count and asserts flatness; it
//! includes this file for the workload.

use futurize::Error;
use futurize::prelude::*;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// How much work a soak does, per plan.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Soak {
    /// Futures created in all (in `steps` batches).
    pub futures: usize,
    /// `foreach!` calls in all, one a step.
    pub steps: usize,
    /// Elements per `foreach!` call.
    pub elements: u64,
    /// Every how many steps a batch also drops and cancels running
    /// futures (which kills a worker process or retires a thread); 0:
    /// never, so that the same two worker processes serve the whole run.
    pub kill_every: usize,
    /// After which percentages of the steps to read (10, 50 and 100 at
    /// least); each reading takes about a third of a second.
    pub readings: &'static [usize],
}

/// One reading of this process and its worker processes.
#[derive(Clone, Debug)]
pub(crate) struct Sample {
    /// Percent of the steps done.
    pub percent: usize,
    /// Futures created so far.
    pub futures: usize,
    /// `foreach!` calls made so far.
    pub calls: usize,
    /// Seconds since the run started.
    pub seconds: f64,
    /// Open file descriptors of this process.
    pub fds: usize,
    /// Threads of this process.
    pub threads: usize,
    /// This process's VmRSS, kB.
    pub rss_kb: u64,
    /// Live child processes (the workers).
    pub workers: usize,
    /// Children that have exited but were not reaped.
    pub zombies: usize,
    /// Sum of the live children's VmRSS, kB.
    pub workers_rss_kb: u64,
    /// Distinct processes that have run futures so far.
    pub worker_pids_seen: usize,
    /// The live children's pids, in order.
    pub worker_pids: Vec<u32>,
}

/// The `Name: value` field of a /proc status file, as a number (the first
/// word of the value).
fn status_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// This process's children: (pid, is a zombie).
fn children() -> Vec<(u32, bool)> {
    let me = std::process::id();
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let mut rest = stat
            .rsplit_once(')')
            .map_or("", |(_, r)| r)
            .split_whitespace();
        let state = rest.next().unwrap_or("");
        let ppid: u32 = rest.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == me {
            found.push((pid, state == "Z"));
        }
    }
    found
}

/// What /proc says about this process and its children at one moment.
struct Proc {
    fds: usize,
    threads: usize,
    rss_kb: u64,
    workers: usize,
    zombies: usize,
    workers_rss_kb: u64,
    worker_pids: Vec<u32>,
}

/// Reads fds, threads and RSS of this process and its children.
fn read_proc() -> Proc {
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mut p = Proc {
        fds,
        threads: status_field(&status, "Threads").unwrap_or(0) as usize,
        rss_kb: status_field(&status, "VmRSS").unwrap_or(0),
        workers: 0,
        zombies: 0,
        workers_rss_kb: 0,
        worker_pids: Vec::new(),
    };
    for (pid, zombie) in children() {
        if zombie {
            p.zombies += 1;
            continue;
        }
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        p.workers += 1;
        p.workers_rss_kb += status_field(&s, "VmRSS").unwrap_or(0);
        p.worker_pids.push(pid);
    }
    p.worker_pids.sort_unstable();
    p
}

/// Lets retired threads and killed workers finish, brings the pool back to
/// full strength (two elements that each hold a worker for a moment), and
/// reads. Both elements panic: a process keeps what its first panic loads
/// (under RUST_BACKTRACE=1 the debug info, tens of MB in a debug build), so
/// every reading is of workers that have panicked, whether they are new
/// (replacing killed ones) or not.
fn settle_and_read() -> Proc {
    std::thread::sleep(Duration::from_millis(150));
    let held: Vec<Result<u64, Error>> = foreach!(i in 0..2u64 => {
        std::thread::sleep(Duration::from_millis(20));
        if i < 2 {
            panic!("soak: settling element {i} panics");
        }
        i
    } %dofuture% chunk_size = 1, errors = "pass")
    .expect("the settling call");
    assert!(
        held.iter()
            .all(|h| matches!(h, Err(Error::Panicked { .. })))
    );
    std::thread::sleep(Duration::from_millis(150));
    read_proc()
}

fn plain(k: u64) -> (u64, u32) {
    (k * 2, std::process::id())
}

/// One batch of `n` futures, numbered from `first`, in the mix described
/// at the top; with `kill`, some are dropped or cancelled while running.
/// Adds the processes that ran the collected ones to `pids`.
fn futures_batch(first: u64, n: usize, kill: bool, pids: &mut HashSet<u32>) {
    // The special ones below (2 printing, 2 panicking, 3 dropped, 2
    // cancelled, 3 lazy); the rest of the batch is plain.
    const SPECIAL: usize = 12;
    let n_plain = n.saturating_sub(SPECIAL);
    let ks: Vec<u64> = (first..first + n_plain as u64).collect();
    let fs: Vec<_> = ks.iter().map(|&k| future!(plain(k))).collect();
    for (k, (v, pid)) in ks.iter().zip(value(fs).expect("plain futures")) {
        assert_eq!(v, k * 2);
        pids.insert(pid);
    }
    if n < SPECIAL {
        return;
    }
    let k = first + n_plain as u64;

    // Output relayed at value(), and output silenced.
    let printed = future!({
        println!("soak: future {k} prints");
        k
    });
    assert_eq!(printed.value().unwrap(), k);
    let silent = future!(
        {
            println!("soak: this is never shown");
            k + 1
        },
        stdout = false
    );
    assert_eq!(silent.value().unwrap(), k + 1);

    // Panics.
    let panics: Vec<Future<u64>> = (0..2u64)
        .map(|j| {
            future!(
                panic!("soak: future {} panics", k + j),
                label = "soak-panic"
            )
        })
        .collect();
    for f in panics {
        assert!(matches!(f.value(), Err(Error::Panicked { .. })));
    }

    // Dropped without collecting: with `kill` two at once (usually still
    // running), else two resolved first; and one resolved first.
    for j in 0..3 {
        let f = future!(plain(k + j));
        if !kill || j == 2 {
            f.resolve();
        }
        drop(f);
    }

    // Cancelled: a lazy one, and a running one (with `kill`; else a
    // resolved one, which keeps its value).
    let lazy = future!(plain(k), lazy = true);
    assert!(lazy.cancel());
    assert!(matches!(lazy.value(), Err(Error::Cancelled { .. })));
    let pause = Duration::from_millis(if kill { 20 } else { 0 });
    let slow = future!({
        std::thread::sleep(pause);
        k
    });
    if !kill {
        slow.resolve();
    }
    match (slow.cancel(), slow.value()) {
        (true, Err(Error::Cancelled { .. })) if kill => {}
        (false, Ok(v)) => assert_eq!(v, k),
        (c, other) => panic!("cancel() said {c}, then value() gave {other:?}"),
    }

    // Lazy: collected, polled first, never started.
    let a = future!(plain(k + 3), lazy = true);
    let b = future!(plain(k + 4), lazy = true);
    let c = future!(plain(k + 5), lazy = true);
    let _ = b.resolved();
    assert_eq!(a.value().unwrap().0, (k + 3) * 2);
    assert_eq!(b.value().unwrap().0, (k + 4) * 2);
    drop(c);
}

/// Sum of `0..n` times 2.
fn doubled_sum(n: u64) -> u64 {
    n * (n - 1)
}

/// One `foreach!` call of the kind `step % 6`. `seeded` holds the first
/// seeded call's values, which every later one must repeat.
fn foreach_call(step: usize, elements: u64, seeded: &mut Option<Vec<u64>>) {
    let n = elements;
    match step % 6 {
        0 => {
            let ys: Vec<u64> = foreach!(i in 0..n => i * 2 %dofuture%).expect("plain call");
            assert_eq!(ys.len() as u64, n);
            assert_eq!(ys.iter().sum::<u64>(), doubled_sum(n));
        }
        1 => {
            let bad = n / 2;
            let ys: Vec<Result<u64, Error>> = foreach!(i in 0..n => {
                if i == bad {
                    panic!("soak: element {i} panics");
                }
                i * 2
            } %dofuture% errors = "pass")
            .expect("errors = \"pass\" returns every element");
            assert_eq!(ys.len() as u64, n);
            assert_eq!(ys.iter().filter(|y| y.is_err()).count(), 1);
            assert!(matches!(ys[bad as usize], Err(Error::Panicked { .. })));
        }
        2 => {
            let ys: Vec<u64> =
                foreach!(_i in 0..n => rng().next_u64() %dofuture% seed = 1).expect("seeded call");
            match seeded {
                Some(first) => assert!(*first == ys, "seed = 1 gave other numbers"),
                None => *seeded = Some(ys),
            }
        }
        3 => {
            let shown: Vec<u64> = foreach!(i in 0..n => {
                if i == 0 {
                    println!("soak: element {i} prints");
                }
                i
            } %dofuture%)
            .expect("printing call");
            assert_eq!(shown.len() as u64, n);
            let silenced: Vec<u64> = foreach!(i in 0..n => {
                println!("soak: element {i}, never shown");
                i
            } %dofuture% stdout = false)
            .expect("silenced call");
            assert_eq!(silenced.len() as u64, n);
        }
        4 => {
            let ys: Vec<u64> = foreach!(i in 0..n => {
                progress!();
                i + 1
            } %dofuture% progress = true, timeout = "1m", retries = 1, label = "soak-progress")
            .expect("progress call");
            assert_eq!(ys.len() as u64, n);
        }
        _ => {
            let total: u64 = foreach!(i in 0..n => i * 2 %dofuture%
                combine = |a, b| a + b, chunk_size = 50, ordering = "random")
            .expect("combining call");
            assert_eq!(total, doubled_sum(n));
        }
    }
}

/// Runs `soak` under `plan`; returns the readings: before the first step
/// (percent 0, the pool not started) and after the steps of each of
/// `soak.readings`.
pub(crate) fn run(plan: futurize::Plan, soak: Soak) -> Vec<Sample> {
    let _g = with_plan(plan);
    let started = Instant::now();
    let mut pids = HashSet::new();
    let mut seeded = None;
    let mut samples = Vec::new();
    let mut sample = |percent: usize, futures: usize, calls: usize, pids: &HashSet<u32>| {
        let p = if percent == 0 {
            read_proc()
        } else {
            settle_and_read()
        };
        samples.push(Sample {
            percent,
            futures,
            calls,
            seconds: started.elapsed().as_secs_f64(),
            fds: p.fds,
            threads: p.threads,
            rss_kb: p.rss_kb,
            workers: p.workers,
            zombies: p.zombies,
            workers_rss_kb: p.workers_rss_kb,
            worker_pids_seen: pids.len(),
            worker_pids: p.worker_pids,
        });
    };
    sample(0, 0, 0, &pids);
    let steps = soak.steps.max(1);
    let mut readings = soak.readings.iter().copied().peekable();
    let mut created = 0;
    for step in 0..steps {
        let upto = soak.futures * (step + 1) / steps;
        let kill = soak.kill_every > 0 && step % soak.kill_every == 0;
        futures_batch(created as u64, upto - created, kill, &mut pids);
        created = upto;
        foreach_call(step, soak.elements, &mut seeded);
        while let Some(percent) = readings.next_if(|&p| (step + 1) * 100 >= p * steps) {
            sample(percent, created, step + 1, &pids);
        }
    }
    samples
}

/// The reading at `percent`.
pub(crate) fn at(samples: &[Sample], percent: usize) -> &Sample {
    samples
        .iter()
        .find(|s| s.percent == percent)
        .unwrap_or_else(|| panic!("no reading at {percent} %"))
}

/// Largest growth of resident memory allowed from the reading at 10 % to
/// a later one, kB, for this process and for the sum of the workers (in a
/// run without kills, where the same two workers serve it all).
pub(crate) const RSS_BOUND_KB: u64 = 8 * 1024;

/// What is not flat between the reading at 10 % and those at 50 % and
/// 100 %: open fds or threads more than 2 apart, this process's RSS grown
/// by more than [`RSS_BOUND_KB`], another number of live workers, or
/// children left unreaped at any reading from 10 % on. With
/// `same_workers` (a run without kills) also other worker processes than
/// at 10 %, or their summed RSS grown by more than [`RSS_BOUND_KB`].
pub(crate) fn not_flat(samples: &[Sample], same_workers: bool) -> Vec<String> {
    let base = at(samples, 10);
    let mut problems = Vec::new();
    for later in [at(samples, 50), at(samples, 100)] {
        let p = later.percent;
        if later.fds.abs_diff(base.fds) > 2 {
            problems.push(format!(
                "open fds {} at 10 %, {} at {p} %",
                base.fds, later.fds
            ));
        }
        if later.threads.abs_diff(base.threads) > 2 {
            problems.push(format!(
                "threads {} at 10 %, {} at {p} %",
                base.threads, later.threads
            ));
        }
        if later.rss_kb > base.rss_kb + RSS_BOUND_KB {
            problems.push(format!(
                "RSS {} kB at 10 %, {} kB at {p} %",
                base.rss_kb, later.rss_kb
            ));
        }
        if later.workers != base.workers {
            problems.push(format!(
                "{} live workers at 10 %, {} at {p} %",
                base.workers, later.workers
            ));
        }
        if same_workers && later.worker_pids != base.worker_pids {
            problems.push(format!(
                "workers {:?} at 10 %, {:?} at {p} %",
                base.worker_pids, later.worker_pids
            ));
        }
        if same_workers && later.workers_rss_kb > base.workers_rss_kb + RSS_BOUND_KB {
            problems.push(format!(
                "workers' RSS {} kB at 10 %, {} kB at {p} %",
                base.workers_rss_kb, later.workers_rss_kb
            ));
        }
    }
    for s in samples.iter().filter(|s| s.percent >= 10) {
        if s.zombies > 0 {
            problems.push(format!(
                "{} unreaped children at {} %",
                s.zombies, s.percent
            ));
        }
    }
    problems
}

/// The readings as a Markdown table.
pub(crate) fn table(plan: &str, samples: &[Sample]) -> String {
    let mb = |kb: u64| format!("{:.1}", kb as f64 / 1024.0);
    let mut t = String::from(
        "| plan | at | futures | calls | s | fds | threads | RSS MB | workers | zombies | workers' RSS MB | processes that ran futures |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for s in samples {
        t += &format!(
            "| {plan} | {} % | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} |\n",
            s.percent,
            s.futures,
            s.calls,
            s.seconds,
            s.fds,
            s.threads,
            mb(s.rss_kb),
            s.workers,
            s.zombies,
            mb(s.workers_rss_kb),
            s.worker_pids_seen
        );
    }
    t
}

/// Points this process's stdout at /dev/null until the guard drops (what
/// bodies print would otherwise fill the bench's output).
struct Quiet(Option<std::os::fd::OwnedFd>);

impl Quiet {
    fn new() -> Quiet {
        use std::io::Write;
        use std::os::fd::{AsRawFd, FromRawFd};
        let _ = std::io::stdout().flush();
        let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
            return Quiet(None);
        };
        // SAFETY: dup and dup2 on descriptors this process owns; the copy of
        // fd 1 is owned by the guard from here on.
        unsafe {
            let saved = libc::dup(1);
            if saved < 0 {
                return Quiet(None);
            }
            libc::dup2(null.as_raw_fd(), 1);
            Quiet(Some(std::os::fd::OwnedFd::from_raw_fd(saved)))
        }
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let _ = std::io::stdout().flush();
        if let Some(saved) = self.0.take() {
            // SAFETY: puts the saved copy back on fd 1; `saved` is closed after.
            unsafe {
                libc::dup2(saved.as_raw_fd(), 1);
            }
        }
    }
}

/// The soaks a full run makes: a name, the plan, and how often running
/// futures are dropped or cancelled (every step; never).
pub(crate) fn plans(kill_every: usize) -> Vec<(&'static str, futurize::Plan, usize)> {
    vec![
        (
            "multiprocess:2",
            Multiprocess::workers(2).into(),
            kill_every,
        ),
        (
            "multiprocess:2, no kills",
            Multiprocess::workers(2).into(),
            0,
        ),
        ("multithread:2", Multithread::workers(2).into(), kill_every),
    ]
}

#[cfg_attr(test, allow(dead_code))]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
    let (futures, steps, elements) = if full {
        (100_000, 1000, 1000)
    } else {
        (200, 10, 100)
    };
    let mut failed = false;
    for (name, p, kill_every) in plans(1) {
        let soak = Soak {
            futures,
            steps,
            elements,
            kill_every,
            readings: &[10, 20, 30, 40, 50, 60, 70, 80, 90, 100],
        };
        let samples = {
            let _quiet = Quiet::new();
            run(p, soak)
        };
        println!("soak {name}: {futures} futures, {steps} foreach! calls of {elements} elements");
        println!("{}", table(name, &samples));
        if full {
            let problems = not_flat(&samples, kill_every == 0);
            if problems.is_empty() {
                println!("{name}: flat from 10 % to 100 %\n");
            } else {
                failed = true;
                println!("{name}: NOT FLAT: {}\n", problems.join("; "));
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
