//! The workloads of `benches/compare/run.sh`, in futurize. Prints one line
//! per workload: name, median seconds (release build:
//! `cargo run --release --example compare_workloads`). With the argument
//! `slurm` (and `SLURM_CONF` set), the Slurm workloads instead
//! (slurm_workloads.rs).

#[path = "slurm_workloads.rs"]
mod slurm_workloads;

use futurize::prelude::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

fn median(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64()
}

fn time(n: usize, mut f: impl FnMut()) -> f64 {
    f();
    median(
        (0..n)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn report(name: &str, seconds: f64) {
    println!("{name} {seconds:.9}");
}

/// The same loop as the R side's `busy`, in Rust: the work differs in speed
/// between the languages, so compare speed-ups, not these times.
fn busy(seed: u64) -> f64 {
    let mut x = 0.0;
    for k in 1..=20_000_000u64 {
        x += k as f64;
    }
    x + seed as f64
}

/// 100 MB of bytes to one worker of the current plan, their sum back: the
/// same work as the peers' `transfer_100mb_checksum` (benches/compare/workloads_py.py).
fn transfer_100mb() {
    let data: Vec<u8> = (0..100_000_000u32).map(|i| (i % 251) as u8).collect();
    let expected: u64 = data.iter().map(|&b| u64::from(b)).sum();
    report(
        "transfer_100mb_checksum_multiprocess_2",
        time(10, || {
            let sum = future!(data.iter().map(|&b| u64::from(b)).sum::<u64>())
                .value()
                .unwrap();
            assert_eq!(sum, expected);
        }),
    );
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("slurm") {
        let registry =
            std::env::temp_dir().join(format!("futurize-compare-registry-{}", std::process::id()));
        std::fs::create_dir_all(&registry).expect("the registry directory");
        slurm_workloads::run(&registry, report);
        let _ = std::fs::remove_dir_all(&registry);
        return;
    }
    let (mut near, mut far) = UnixStream::pair().unwrap();
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while far.read_exact(&mut buf).is_ok() && far.write_all(&buf).is_ok() {}
    });
    let mut buf = [1u8; 64];
    report(
        "floor_unix_socket_ping_pong",
        time(10_000, || {
            near.write_all(&buf).unwrap();
            near.read_exact(&mut buf).unwrap();
        }),
    );
    drop(near);
    echo.join().unwrap();

    let _g = with_plan(Multiprocess::workers(2));
    report(
        "round_trip_multiprocess_2",
        time(10_000, || {
            future!(1u32).value().unwrap();
        }),
    );
    report(
        "foreach_1e5_trivial_multiprocess_2",
        time(50, || {
            let v: Vec<u64> = foreach!(i in 1..=100_000u64 => i * 2 %dofuture%).unwrap();
            assert_eq!(v.len(), 100_000);
        }),
    );
    report(
        "foreach_1e4_dopar_2",
        time(50, || {
            let v: Vec<u64> = foreach!(i in 1..=10_000u64 => i * 2 %dofuture%).unwrap();
            assert_eq!(v.len(), 10_000);
        }),
    );
    report(
        "seeded_1e5_no_draw_multiprocess_2",
        time(50, || {
            let v: Vec<u64> = foreach!(i in 1..=100_000u64 => i * 2 %dofuture% seed = 1).unwrap();
            assert_eq!(v.len(), 100_000);
        }),
    );
    transfer_100mb();
    {
        let _s = with_plan(Sequential);
        report(
            "cpu_bound_8_sequential",
            time(3, || {
                let v: Vec<f64> = foreach!(i in 0..8u64 => busy(i) %dofuture%).unwrap();
                assert_eq!(v.len(), 8);
            }),
        );
    }
    report(
        "cpu_bound_8_multiprocess_2",
        time(3, || {
            let v: Vec<f64> = foreach!(i in 0..8u64 => busy(i) %dofuture%).unwrap();
            assert_eq!(v.len(), 8);
        }),
    );
}
