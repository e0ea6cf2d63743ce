//! The workloads of `benches/compare/run.sh`, in futurize. Prints one line
//! per workload: name, median seconds (release build:
//! `cargo run --release --example compare_workloads`).

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

fn main() {
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
