//! The common shapes of a loop over data, written as in plain Rust, give
//! the plain results on every plan: `(0..n).into_iter()`, `enumerate()`,
//! `zip(..)`, `copied()` in `#[futurize]` pipelines and in `foreach!`;
//! and `#[futurize(when = ...)]` runs in parallel only when its condition
//! holds.

use futurize::prelude::*;

fn plans() -> Vec<futurize::Plan> {
    vec![
        Sequential.into(),
        Multithread::workers(2).into(),
        Multiprocess::workers(2).into(),
    ]
}

#[futurize]
fn squares_below(n: u64) -> Vec<u64> {
    (0..n).into_iter().map(|i| i * i).collect()
}

#[futurize]
fn weighted(xs: &[f64]) -> Vec<f64> {
    xs.iter().enumerate().map(|(i, x)| i as f64 * x).collect()
}

#[futurize]
fn numbered(words: &[String], sep: &str) -> Vec<String> {
    words
        .iter()
        .enumerate()
        .map(|(i, w): (usize, &String)| format!("{i}{sep}{w}"))
        .collect()
}

#[futurize]
fn dot(xs: &[f64], ys: &[f64]) -> f64 {
    xs.iter().zip(ys.iter()).map(|(x, y)| x * y).sum()
}

#[futurize]
fn odd_positions(xs: &[u32]) -> Vec<usize> {
    xs.iter()
        .copied()
        .enumerate()
        .filter_map(|(i, x)| (x % 2 == 1).then_some(i))
        .collect()
}

#[test]
fn futurize_pipelines_of_every_shape_give_the_plain_results() {
    let xs: Vec<f64> = (0..40).map(|i| f64::from(i) * 0.5 - 3.0).collect();
    let ys: Vec<f64> = (0..40).map(f64::from).collect();
    let words: Vec<String> = ["alpha", "beta", "gamma", "delta", "epsilon"]
        .iter()
        .map(|w| w.to_string())
        .collect();
    let odd: Vec<u32> = vec![3, 4, 7, 10, 11, 12, 15];
    for p in plans() {
        let _g = with_plan(p.clone());
        assert_eq!(
            squares_below(30),
            (0..30u64).map(|i| i * i).collect::<Vec<_>>(),
            "{p}"
        );
        let mut plain = Vec::new();
        for (i, x) in xs.iter().enumerate() {
            plain.push(i as f64 * x);
        }
        assert_eq!(weighted(&xs), plain, "{p}");
        let mut plain = Vec::new();
        for (i, w) in words.iter().enumerate() {
            plain.push(format!("{i}: {w}"));
        }
        assert_eq!(numbered(&words, ": "), plain, "{p}");
        let mut plain = 0.0;
        for (x, y) in xs.iter().zip(&ys) {
            plain += x * y;
        }
        assert_eq!(dot(&xs, &ys), plain, "{p}");
        assert_eq!(odd_positions(&odd), vec![0, 2, 4, 6], "{p}");
    }
}

// `(0..n).into_iter()` is written as users write it.
#[allow(clippy::useless_conversion)]
#[test]
fn foreach_takes_enumerate_and_into_iter() {
    let xs: Vec<f64> = (0..25).map(|i| f64::from(i) / 4.0).collect();
    let words: Vec<String> = (0..9).map(|i| format!("w{i}")).collect();
    let scale = 3.0;
    for p in plans() {
        let _g = with_plan(p.clone());

        let got: Vec<f64> =
            foreach!((i, x) in xs.iter().enumerate() => i as f64 * x * scale %dofuture%).unwrap();
        let mut plain = Vec::new();
        for (i, x) in xs.iter().enumerate() {
            plain.push(i as f64 * x * scale);
        }
        assert_eq!(got, plain, "{p}");

        let got: Vec<String> = foreach!((i, w) in words.iter().enumerate() => {
            format!("{i}={w}")
        } %dofuture% chunk_size = 2)
        .unwrap();
        let mut plain = Vec::new();
        for (i, w) in words.iter().enumerate() {
            plain.push(format!("{i}={w}"));
        }
        assert_eq!(got, plain, "{p}");

        let got: Vec<u64> = foreach!(i in (0..17u64).into_iter() => i * i + 1 %dofuture%).unwrap();
        let mut plain = Vec::new();
        for i in 0..17u64 {
            plain.push(i * i + 1);
        }
        assert_eq!(got, plain, "{p}");

        let got: Vec<f64> =
            foreach!((x, w) in xs.iter().zip(words.iter()) => x + w.len() as f64 %dofuture%)
                .unwrap();
        let mut plain = Vec::new();
        for (x, w) in xs.iter().zip(&words) {
            plain.push(x + w.len() as f64);
        }
        assert_eq!(got, plain, "{p}");
    }
}

#[test]
fn enumerated_elements_are_rebuilt_in_worker_processes() {
    let _g = with_plan(Multiprocess::workers(2));
    let here = std::process::id();
    let words: Vec<String> = (0..12).map(|i| "x".repeat(i)).collect();
    let got: Vec<(usize, usize, u32)> = foreach!((i, w) in words.iter().enumerate() => {
        (i, w.len(), std::process::id())
    } %dofuture%)
    .unwrap();
    for (k, (i, len, pid)) in got.into_iter().enumerate() {
        assert_eq!((i, len), (k, k));
        assert_ne!(pid, here);
    }
}

/// The process each element ran in.
#[futurize(when = xs.len() > 100)]
fn where_each_ran(xs: &[u32]) -> Vec<u32> {
    xs.iter().map(|_| std::process::id()).collect()
}

#[test]
fn when_runs_in_parallel_only_when_its_condition_holds() {
    let _g = with_plan(Multiprocess::workers(2));
    let here = std::process::id();
    let small: Vec<u32> = (0..10).collect();
    let large: Vec<u32> = (0..200).collect();
    let pids = where_each_ran(&small);
    assert_eq!(pids, vec![here; 10], "a small input runs as written");
    let pids = where_each_ran(&large);
    assert_eq!(pids.len(), 200);
    assert!(
        pids.iter().all(|pid| *pid != here),
        "a large input runs on the workers"
    );
}

#[futurize(when = parallel, chunk_size = 4)]
fn sum_of_squares(n: u64, parallel: bool) -> u64 {
    (1..=n).map(|i| i * i).sum()
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Grid {
    cells: Vec<f64>,
    threshold: usize,
}

impl Grid {
    #[futurize(when = self.cells.len() >= self.threshold)]
    fn scaled(&self, by: f64) -> Vec<f64> {
        self.cells.iter().map(|c| c * by).collect()
    }
}

#[test]
fn both_branches_of_when_give_the_same_values() {
    for p in plans() {
        let _g = with_plan(p.clone());
        let plain: u64 = (1..=50u64).map(|i| i * i).sum();
        assert_eq!(sum_of_squares(50, true), plain, "{p}");
        assert_eq!(sum_of_squares(50, false), plain, "{p}");
        for threshold in [1, 1000] {
            let grid = Grid {
                cells: vec![1.0, 2.5, -4.0],
                threshold,
            };
            assert_eq!(grid.scaled(2.0), vec![2.0, 5.0, -8.0], "{p}");
        }
    }
}
