//! Round trips per backend, against the floor of a Unix-socket ping-pong
//! measured in the same run; a 100 MB capture against a plain pipe copy;
//! a 100 MB `Vec<f64>` value returned from a worker against the same
//! floor; the start-up cost of a fresh worker process. The capture is a
//! `Vec<u8>` and a `Vec<f64>` of the same size (`multiprocess_1_f64`).
//!
//! `cargo bench --bench round_trip` (numbers go to docs/benchmarks.md);
//! `cargo test --benches` runs each once as a smoke test.

use criterion::{Criterion, criterion_group, criterion_main};
use futurize::prelude::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

fn round_trips(c: &mut Criterion) {
    let mut group = c.benchmark_group("round_trip");
    let plans: Vec<(&str, futurize::Plan)> = vec![
        ("sequential", Sequential.into()),
        ("multithread_2", Multithread::workers(2).into()),
        ("multiprocess_2", Multiprocess::workers(2).into()),
    ];
    for (name, p) in plans {
        let _g = with_plan(p);
        // Start the workers before measuring.
        future!(0u32).value().unwrap();
        future!(0u32).value().unwrap();
        group.bench_function(name, |b| b.iter(|| future!(1u32).value().unwrap()));
    }
    group.bench_function("floor_unix_socket_ping_pong_64b", |b| {
        let (mut near, mut far) = UnixStream::pair().unwrap();
        let echo = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while far.read_exact(&mut buf).is_ok() {
                if far.write_all(&buf).is_err() {
                    break;
                }
            }
        });
        let mut buf = [1u8; 64];
        b.iter(|| {
            near.write_all(&buf).unwrap();
            near.read_exact(&mut buf).unwrap();
        });
        drop(near);
        echo.join().unwrap();
    });
    group.finish();
}

fn worker_start(c: &mut Criterion) {
    let mut group = c.benchmark_group("worker_start");
    group.sample_size(20);
    let _g = with_plan(Multiprocess::workers(1).fresh());
    group.bench_function("fresh_process_per_future", |b| {
        b.iter(|| future!(1u32).value().unwrap())
    });
    group.finish();
    let _p = with_plan(Multiprocess::workers(1));
    let pid = future!(std::process::id()).value().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .unwrap_or("VmRSS: ?");
    eprintln!("idle worker {pid}: {rss}");
}

fn large_capture(c: &mut Criterion) {
    let mut group = c.benchmark_group("capture");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for mb in [1usize, 10, 100] {
        let size = mb << 20;
        let data = vec![7u8; size];
        {
            let _g = with_plan(Multiprocess::workers(1));
            future!(0u8).value().unwrap();
            group.bench_function(format!("{mb}mb/multiprocess_1"), |b| {
                b.iter(|| future!(data.len()).value().unwrap())
            });
            let floats = vec![0.5f64; size / 8];
            group.bench_function(format!("{mb}mb/multiprocess_1_f64"), |b| {
                b.iter(|| future!(floats.len()).value().unwrap())
            });
        }
        group.bench_function(format!("{mb}mb/floor_pipe_copy"), |b| {
            b.iter(|| pipe_copy(&data))
        });
    }
    group.finish();
}

/// `data` written into a pipe from this thread while `receive` reads it
/// out on another; what `receive` made of the bytes and how many there
/// were.
fn through_pipe<T: Send + 'static>(
    data: &[u8],
    receive: impl FnOnce(std::io::PipeReader, usize) -> (T, usize) + Send + 'static,
) -> T {
    let (reader, mut writer) = std::io::pipe().unwrap();
    let len = data.len();
    let sink = std::thread::spawn(move || receive(reader, len));
    writer.write_all(data).unwrap();
    drop(writer);
    let (made, received) = sink.join().unwrap();
    assert_eq!(received, len);
    made
}

/// The floor of moving `data` between two processes: its bytes written
/// into a pipe and read out of it, 64 KiB at a time.
fn pipe_copy(data: &[u8]) {
    through_pipe(data, |mut reader, _| {
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0;
        loop {
            match reader.read(&mut buf).unwrap() {
                0 => break ((), total),
                n => total += n,
            }
        }
    })
}

/// The same pipe copy, with the reader taking the bytes into a new `Vec`
/// of their size, as a value arrives for its caller: the floor with the
/// receiving side's fresh memory in it.
fn pipe_copy_into_new_vec(data: &[u8]) -> Vec<u8> {
    through_pipe(data, |mut reader, len| {
        let mut received = Vec::with_capacity(len);
        reader.read_to_end(&mut received).unwrap();
        let n = received.len();
        (received, n)
    })
}

/// A 100 MB `Vec<f64>` made by a worker and returned (issue 26 item 3),
/// beside the same value made in this process (what any plan pays for the
/// body) and a pipe copy of its bytes (the floor).
fn large_value(c: &mut Criterion) {
    let mut group = c.benchmark_group("value_back");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    let len = (100usize << 20) / 8;
    {
        let _g = with_plan(Multiprocess::workers(1));
        future!(0u8).value().unwrap();
        group.bench_function("100mb/multiprocess_1", |b| {
            b.iter(|| {
                let v: Vec<f64> = future!(vec![0.5f64; len]).value().unwrap();
                assert_eq!(v.len(), len);
                v
            })
        });
    }
    group.bench_function("100mb/made_in_place", |b| b.iter(|| vec![0.5f64; len]));
    let data = vec![7u8; len * 8];
    group.bench_function("100mb/floor_pipe_copy", |b| b.iter(|| pipe_copy(&data)));
    group.bench_function("100mb/floor_pipe_copy_into_new_vec", |b| {
        b.iter(|| pipe_copy_into_new_vec(&data))
    });
    group.finish();
}

criterion_group!(
    benches,
    round_trips,
    worker_start,
    large_capture,
    large_value
);
criterion_main!(benches);
