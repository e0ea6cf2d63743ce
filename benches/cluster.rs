//! Cluster plans over ssh (issue 13), against a private OpenSSH server on
//! 127.0.0.1–3 started by the project's own scripts/test-sshd.sh (hosts
//! node1..node3; the "machines" are this one, so every figure here is ssh
//! and the host agent on loopback, not a network).
//!
//! - a round trip on a cluster worker next to a 64-byte ping-pong through a
//!   plain ssh connection (`ssh node1 cat`) to the same sshd, and next to
//!   Multiprocess(2);
//! - start-up, from the plan to values from all of its workers: 1 worker,
//!   8 workers on one host, 3 hosts × 4, next to `ssh node1 true`;
//! - a 1e5-element `foreach!` over 3 hosts next to Multiprocess(2);
//! - a 100 MB capture sent to a remote worker next to
//!   `head -c 100M /dev/zero | ssh node1 'cat > /dev/null'`.
//!
//! `cargo bench --bench cluster -- --noplot` (numbers go to
//! docs/benchmarks.md); `cargo test --benches` runs each once as a smoke
//! test. Without `/usr/sbin/sshd` it prints a SKIPPED line and succeeds.

use criterion::{Criterion, SamplingMode};
use futurize::prelude::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/private_sshd.rs"]
mod sshd;

#[path = "../tests/common/process_tree.rs"]
mod process_tree;
use process_tree::{sshd_above, wait_for_children_to_end};

/// How long each element of the start-up loops sleeps: longer than it takes
/// to start the remaining workers, so that every worker gets one element
/// (no worker becomes idle and takes a second one). Subtracted from the
/// figures.
const START_SLEEP: Duration = Duration::from_millis(500);

/// Whether criterion runs each benchmark once (`cargo test --benches`):
/// without `--bench`, or with `--test`.
fn smoke() -> bool {
    let args: Vec<String> = std::env::args().collect();
    !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test")
}

fn cluster(ssh: &str, hosts: &[&str]) -> Cluster {
    Cluster::hosts(hosts)
        .ssh_command(ssh)
        .launch_timeout(Duration::from_secs(30))
}

/// `ssh` (as the cluster runs it: `sh -c "$FUTURIZE_SSH_COMMAND \"$@\""`)
/// with `args`.
fn ssh(ssh_command: &str, args: &[&str]) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("{ssh_command} \"$@\""))
        .arg("bench-ssh")
        .args(["-o", "BatchMode=yes", "-T"])
        .args(args);
    c
}

/// Every process whose parent is `pid`, and theirs, with `pid` itself.
fn subtree(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
        parents.push((p, ppid));
    }
    let mut found = vec![pid];
    let mut grew = true;
    while grew {
        grew = false;
        for (p, ppid) in &parents {
            if found.contains(ppid) && !found.contains(p) {
                found.push(*p);
                grew = true;
            }
        }
    }
    found
}

/// Voluntary context switches (a thread that blocked, to be woken later)
/// of every thread of every process in the subtrees of `roots`.
fn voluntary_switches(roots: &[u32]) -> u64 {
    let mut total = 0;
    for pid in roots.iter().flat_map(|&r| subtree(r)) {
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            total += status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

/// Wake-ups per exchange: voluntary context switches on both sides (this
/// process and what it started, the sshd session serving `remote` and what
/// it started) over `n` exchanges, divided by `n`.
fn wake_ups_per_exchange(remote: u32, n: u32, mut exchange: impl FnMut()) -> f64 {
    let session = sshd_above(remote);
    let roots = [std::process::id(), session];
    let before = voluntary_switches(&roots);
    for _ in 0..n {
        exchange();
    }
    (voluntary_switches(&roots) - before) as f64 / f64::from(n)
}

/// A process of `futurize-test`'s (or this user's) named `comm`, the newest.
fn newest_named(comm: &str) -> u32 {
    let mut newest = (0u64, 0u32);
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm) {
            let start = std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit(')')
                        .next()?
                        .split_whitespace()
                        .nth(19)?
                        .parse()
                        .ok()
                })
                .unwrap_or(0);
            newest = newest.max((start, p));
        }
    }
    newest.1
}

/// 64 bytes back and forth through `ssh node1 <remote>`.
struct PingPong {
    child: std::process::Child,
    to: std::process::ChildStdin,
    from: std::process::ChildStdout,
}

impl PingPong {
    /// The connection, after a first exchange (which waits for it).
    fn open(ssh_command: &str, remote: &str) -> PingPong {
        let mut child = ssh(ssh_command, &["node1", remote])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("ssh runs");
        let to = child.stdin.take().unwrap();
        let from = child.stdout.take().unwrap();
        let mut p = PingPong { child, to, from };
        p.exchange();
        p
    }

    fn exchange(&mut self) {
        let mut buf = [1u8; 64];
        self.to.write_all(&buf).unwrap();
        self.from.read_exact(&mut buf).unwrap();
    }

    /// The same, with the reader spinning on a non-blocking read for up to
    /// `spin` before it sleeps in `poll`, as a waiter for a remote worker's
    /// answer does (the floor for a leader that spins).
    fn exchange_spinning(&mut self, spin: Duration) {
        use std::os::fd::AsRawFd;
        let fd = self.from.as_raw_fd();
        let mut buf = [1u8; 64];
        self.to.write_all(&buf).unwrap();
        let mut got = 0;
        let start = Instant::now();
        while got < buf.len() {
            // The pipe is non-blocking (`spin_on_reads`).
            match self.from.read(&mut buf[got..]) {
                Ok(0) => panic!("the ping-pong's connection ended"),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if start.elapsed() > spin {
                        let mut p = libc::pollfd {
                            fd,
                            events: libc::POLLIN,
                            revents: 0,
                        };
                        // SAFETY: one pollfd of our own.
                        unsafe { libc::poll(&mut p, 1, -1) };
                    } else {
                        std::hint::spin_loop();
                    }
                }
                Err(e) => panic!("the ping-pong's read failed: {e}"),
            }
        }
    }

    /// Makes reads of the answer non-blocking (for `exchange_spinning`).
    fn spin_on_reads(&mut self) {
        use std::os::fd::AsRawFd;
        let fd = self.from.as_raw_fd();
        // SAFETY: flags of a descriptor we hold.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }

    fn close(self) {
        let PingPong { mut child, to, .. } = self;
        drop(to);
        let _ = child.wait();
    }
}

/// Counts the wake-ups of one round trip on a cluster worker and of one
/// 64 B ping-pong through `ssh node1 cat`, and prints them.
fn count_wake_ups(ssh_command: &str) {
    let n = if smoke() { 20 } else { 2000 };
    let cluster_wake_ups = {
        let _g = with_plan(cluster(ssh_command, &["node1"]));
        let worker: u32 = future!(std::process::id()).value().unwrap();
        wake_ups_per_exchange(worker, n, || {
            future!(1u32).value().unwrap();
        })
    };
    wait_for_children_to_end();
    let mut ping_pong = PingPong::open(ssh_command, "cat");
    let ping_pong_wake_ups = wake_ups_per_exchange(newest_named("cat"), n, || ping_pong.exchange());
    ping_pong.close();
    eprintln!(
        "wake-ups per exchange (voluntary context switches, both sides, {n} exchanges): \
         cluster round trip {cluster_wake_ups:.2}, ssh ping-pong {ping_pong_wake_ups:.2}"
    );
}

fn round_trips(c: &mut Criterion, ssh_command: &str) {
    let mut group = c.benchmark_group("cluster_round_trip");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    {
        let _g = with_plan(cluster(ssh_command, &["node1"]));
        // Start the worker before measuring.
        future!(0u32).value().unwrap();
        future!(0u32).value().unwrap();
        group.bench_function("cluster_node1", |b| {
            b.iter(|| future!(1u32).value().unwrap())
        });
    }
    wait_for_children_to_end();
    // The floor, and the same with two more pipe hops on the remote side
    // (what the agent adds: connection -> agent -> worker -> agent).
    for (name, remote) in [
        ("raw_ssh_ping_pong_64b", "cat"),
        ("raw_ssh_ping_pong_64b_cat_cat_cat", "cat | cat | cat"),
    ] {
        group.bench_function(name, |b| {
            let mut ping_pong = PingPong::open(ssh_command, remote);
            b.iter(|| ping_pong.exchange());
            ping_pong.close();
        });
    }
    // The floor for a leader that spins while it waits, as futurize's
    // waiter for a remote answer does (400 µs, then it sleeps).
    group.bench_function("raw_ssh_ping_pong_64b_spinning_reader", |b| {
        let mut ping_pong = PingPong::open(ssh_command, "cat");
        ping_pong.spin_on_reads();
        b.iter(|| ping_pong.exchange_spinning(Duration::from_micros(400)));
        ping_pong.close();
    });
    {
        let _g = with_plan(Multiprocess::workers(2));
        future!(0u32).value().unwrap();
        future!(0u32).value().unwrap();
        group.bench_function("multiprocess_2", |b| {
            b.iter(|| future!(1u32).value().unwrap())
        });
    }
    group.finish();
}

/// From the plan to a value from each of its `hosts.len()` workers, less
/// [`START_SLEEP`]: one element per worker, each sleeping that long, so the
/// loop ends about that long after the last worker started.
fn all_workers_answer(ssh_command: &str, hosts: &[&str], iters: u64) -> Duration {
    let n = hosts.len();
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let started = Instant::now();
        let g = with_plan(cluster(ssh_command, hosts));
        let pids: Vec<u32> = foreach!(_i in 0..n => {
            std::thread::sleep(START_SLEEP);
            std::process::id()
        } %dofuture% chunk_size = 1)
        .unwrap();
        total += started.elapsed().saturating_sub(START_SLEEP);
        drop(g);
        let mut distinct = pids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != n {
            eprintln!(
                "warning: {} of {n} workers answered (a worker took two elements: \
                 starting them took longer than {START_SLEEP:?})",
                distinct.len()
            );
        }
        wait_for_children_to_end();
    }
    total
}

fn start_up(c: &mut Criterion, ssh_command: &str) {
    let mut group = c.benchmark_group("cluster_start");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("ssh_node1_true", |b| {
        b.iter(|| {
            let s = ssh(ssh_command, &["node1", "true"])
                .stdin(Stdio::null())
                .status()
                .expect("ssh runs");
            assert!(s.success());
        })
    });
    group.bench_function("1_worker_first_value", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                let g = with_plan(cluster(ssh_command, &["node1"]));
                assert_eq!(future!(1u32).value().unwrap(), 1);
                total += started.elapsed();
                drop(g);
                wait_for_children_to_end();
            }
            total
        })
    });
    group.bench_function("1_worker", |b| {
        b.iter_custom(|iters| all_workers_answer(ssh_command, &["node1"], iters))
    });
    group.bench_function("8_workers_1_host", |b| {
        b.iter_custom(|iters| all_workers_answer(ssh_command, &["node1"; 8], iters))
    });
    let three_by_four: Vec<&str> = ["node1", "node2", "node3"].repeat(4);
    group.bench_function("3_hosts_x_4_workers", |b| {
        b.iter_custom(|iters| all_workers_answer(ssh_command, &three_by_four, iters))
    });
    group.finish();
}

fn foreach_1e5(c: &mut Criterion, ssh_command: &str) {
    let mut group = c.benchmark_group("cluster_foreach_1e5");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    let plans: Vec<(&str, futurize::Plan)> = vec![
        (
            "cluster_3_hosts",
            cluster(ssh_command, &["node1", "node2", "node3"]).into(),
        ),
        ("multiprocess_2", Multiprocess::workers(2).into()),
    ];
    for (name, p) in plans {
        let _g = with_plan(p);
        // Warm: every worker started.
        let _: Vec<u64> = foreach!(i in 0..100_000u64 => i * 2 %dofuture%).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| {
                let v: Vec<u64> = foreach!(i in 0..100_000u64 => i * 2 %dofuture%).unwrap();
                v
            })
        });
    }
    wait_for_children_to_end();
    group.finish();
}

fn capture_100mb(c: &mut Criterion, ssh_command: &str) {
    // The smoke run (`cargo test --benches`, an unoptimized build) sends
    // 1 MB: 100 MB take half a minute there.
    let size: usize = if smoke() { 1 << 20 } else { 100 << 20 };
    let mut group = c.benchmark_group("cluster_capture_100mb");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(8));
    let big = vec![7u8; size];
    {
        let _g = with_plan(cluster(ssh_command, &["node1"]));
        future!(0u8).value().unwrap();
        group.bench_function("cluster_node1", |b| {
            b.iter(|| assert_eq!(future!(big.len()).value().unwrap(), size))
        });
    }
    wait_for_children_to_end();
    // The floor, as a shell runs it (a new connection each time).
    let pipe = format!("head -c {size} /dev/zero | {ssh_command} node1 'cat > /dev/null'");
    group.bench_function("head_c_100M_pipe_ssh_cat", |b| {
        b.iter(|| {
            let s = Command::new("sh")
                .arg("-c")
                .arg(&pipe)
                .stdin(Stdio::null())
                .status()
                .expect("sh runs");
            assert!(s.success());
        })
    });
    // The same bytes through a connection opened once, as the cluster's is:
    // the remote side counts each 100 MB and says how many it got.
    group.bench_function("open_ssh_connection_100mb", |b| {
        let counter = format!(
            "while :; do n=$(head -c {size} | wc -c); [ \"$n\" -gt 0 ] || exit 0; echo \"$n\"; done"
        );
        let mut child = ssh(ssh_command, &["node1", &counter])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("ssh runs");
        let mut to = child.stdin.take().unwrap();
        let mut from = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        b.iter(|| {
            to.write_all(&big).unwrap();
            line.clear();
            from.read_line(&mut line).unwrap();
            assert_eq!(line.trim(), size.to_string());
        });
        drop(to);
        let _ = child.wait();
    });
    {
        let _g = with_plan(Multiprocess::workers(1));
        future!(0u8).value().unwrap();
        group.bench_function("multiprocess_1", |b| {
            b.iter(|| assert_eq!(future!(big.len()).value().unwrap(), size))
        });
    }
    group.finish();
}

/// A 100 MB capture to 3 hosts × 4 workers (every worker gets it), next
/// to three `ssh cat`s of 100 MB run in parallel, one per host.
fn capture_100mb_to_12_workers(c: &mut Criterion, ssh_command: &str) {
    let size: usize = if smoke() { 1 << 20 } else { 100 << 20 };
    let mut group = c.benchmark_group("cluster_capture_100mb_3_hosts_x_4");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));
    let big = vec![7u8; size];
    let hosts = ["node1", "node2", "node3"].repeat(4);
    {
        let _g = with_plan(cluster(ssh_command, &hosts));
        let warm: Vec<u32> =
            foreach!(i in 0..12u32 => { std::thread::sleep(Duration::from_millis(50)); i } %dofuture% chunk_size = 1)
                .unwrap();
        assert_eq!(warm.len(), 12);
        group.bench_function("foreach_12_chunks", |b| {
            b.iter(|| {
                // A chunk each, slow enough that every worker takes one.
                let lens: Vec<usize> = foreach!(_i in 0..12u32 => {
                    std::thread::sleep(Duration::from_millis(50));
                    big.len()
                } %dofuture% chunk_size = 1)
                .unwrap();
                assert!(lens.iter().all(|&l| l == size));
            })
        });
    }
    wait_for_children_to_end();
    let parallel = format!(
        "for h in node1 node2 node3; do head -c {size} /dev/zero | {ssh_command} $h 'cat > /dev/null' & done; wait"
    );
    group.bench_function("parallel_ssh_cat_per_host", |b| {
        b.iter(|| {
            let s = Command::new("sh")
                .arg("-c")
                .arg(&parallel)
                .stdin(Stdio::null())
                .status()
                .expect("sh runs");
            assert!(s.success());
        })
    });
    group.finish();
}

fn main() {
    let Some(sshd) = sshd::start() else {
        return;
    };
    // `FUTURIZE_BENCH_ONLY=round-trip`: only the round trips and their
    // wake-ups.
    if std::env::var("FUTURIZE_BENCH_ONLY").is_ok_and(|v| v == "round-trip") {
        let mut c = Criterion::default().configure_from_args();
        count_wake_ups(&sshd.ssh_command);
        round_trips(&mut c, &sshd.ssh_command);
        c.final_summary();
        drop(sshd);
        return;
    }
    // `FUTURIZE_BENCH_ONLY=per-host`: only the captures to 3 hosts × 4.
    if std::env::var("FUTURIZE_BENCH_ONLY").is_ok_and(|v| v == "per-host") {
        let mut c = Criterion::default().configure_from_args();
        capture_100mb_to_12_workers(&mut c, &sshd.ssh_command);
        c.final_summary();
        drop(sshd);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    count_wake_ups(&sshd.ssh_command);
    round_trips(&mut c, &sshd.ssh_command);
    start_up(&mut c, &sshd.ssh_command);
    foreach_1e5(&mut c, &sshd.ssh_command);
    capture_100mb(&mut c, &sshd.ssh_command);
    capture_100mb_to_12_workers(&mut c, &sshd.ssh_command);
    c.final_summary();
    drop(sshd);
}
