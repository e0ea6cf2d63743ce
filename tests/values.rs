//! Values back and elements out in their cheapest form (issue 26 item 3):
//! a future's `Vec` of plain numbers comes back bit for bit on every plan,
//! a local worker answers with a value of 1 MiB or more through its
//! shared-memory outbox and leaves nothing open behind, and a `foreach!`'s
//! elements of plain numbers (a range's chunk as its bounds, any other as
//! bytes) and values of plain numbers arrive unchanged.

mod common;

use common::numbers::{bits, floats};
use futurize::prelude::*;

/// Above the shared-memory threshold (1 MiB), with an odd length.
const BIG: usize = (1 << 18) + 3;

fn plans() -> Vec<futurize::Plan> {
    vec![
        Sequential.into(),
        Multithread::workers(2).into(),
        Multiprocess::workers(2).into(),
        Multiprocess::workers(1).fresh().into(),
    ]
}

/// The memfds named `name` that a process has open.
fn open_memfds(pid: u32, name: &str) -> usize {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|p| p.display().to_string().contains(name))
        .count()
}

#[test]
fn vectors_of_plain_numbers_come_back_bit_for_bit_on_every_plan() {
    let expected = floats(BIG);
    for plan in plans() {
        let _g = with_plan(plan.clone());
        let back: Vec<f64> = future!(floats(BIG)).value().unwrap();
        assert_eq!(bits(&back), bits(&expected), "{plan}");
        let small: Vec<f64> = future!(floats(5)).value().unwrap();
        assert_eq!(bits(&small), bits(&expected[..5]), "{plan}");
        let empty: Vec<f32> = future!(Vec::<f32>::new()).value().unwrap();
        assert!(empty.is_empty());
        let bytes: Vec<u8> = future!(
            (0..3_000_001u32)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<u8>>()
        )
        .value()
        .unwrap();
        assert_eq!(bytes.len(), 3_000_001);
        assert!(bytes.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        let signed: Vec<i8> = future!(vec![-128i8, -1, 0, 127]).value().unwrap();
        assert_eq!(signed, [-128, -1, 0, 127]);
        // Integers wider than a byte take serde's way, large or not.
        let wide: Vec<u64> = future!((0..BIG as u64).map(|i| i << 40).collect::<Vec<u64>>())
            .value()
            .unwrap();
        assert!(wide.iter().enumerate().all(|(i, &v)| v == (i as u64) << 40));
        // A value that holds a Vec among other things.
        let (v, s): (Vec<f64>, String) = future!((floats(3), String::from("x"))).value().unwrap();
        assert_eq!((bits(&v), s), (bits(&expected[..3]), "x".to_string()));
    }
}

#[test]
fn a_local_worker_answers_large_values_through_its_outbox_and_leaves_nothing_open() {
    let _g = with_plan(Multiprocess::workers(1));
    let pid = future!(std::process::id()).value().unwrap();
    for round in 0..3 {
        // Larger each time: the outbox is replaced by a larger one.
        let len = BIG * (round + 1);
        let back: Vec<f64> = future!(floats(len)).value().unwrap();
        assert_eq!(bits(&back), bits(&floats(len)), "round {round}");
    }
    // A value not yet collected when its worker gets the next task is
    // copied out first: both read back whole.
    let first = future!(floats(BIG));
    let second = future!(floats(2 * BIG + 1));
    let third = future!(floats(BIG + 2));
    assert_eq!(bits(&second.value().unwrap()), bits(&floats(2 * BIG + 1)));
    assert_eq!(bits(&first.value().unwrap()), bits(&floats(BIG)));
    assert_eq!(bits(&third.value().unwrap()), bits(&floats(BIG + 2)));
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(
        maps.contains("memfd:futurize-outbox"),
        "the leader maps the worker's outbox"
    );
    // The worker's descriptor closes at its next task, the leader's at once.
    assert_eq!(future!(std::process::id()).value().unwrap(), pid);
    assert_eq!(open_memfds(std::process::id(), "futurize-outbox"), 0);
    assert_eq!(open_memfds(pid, "futurize-outbox"), 0);
    // A chunk's answer of 1 MiB or more takes the outbox too.
    let chunks: Vec<Vec<f64>> =
        foreach!(i in 0..3usize => floats(BIG + i) %dofuture% chunk_size = 1).unwrap();
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(bits(c), bits(&floats(BIG + i)));
    }
}

#[test]
fn elements_and_values_of_plain_numbers_arrive_unchanged() {
    for plan in plans() {
        let _g = with_plan(plan.clone());
        // Ranges of every width and sign, at the ends of their types.
        let a: Vec<u64> = foreach!(i in (u64::MAX - 1000)..u64::MAX => i ^ 1 %dofuture%).unwrap();
        assert_eq!(
            a,
            ((u64::MAX - 1000)..u64::MAX)
                .map(|i| i ^ 1)
                .collect::<Vec<_>>()
        );
        let b: Vec<i8> = foreach!(i in -128i8..=127 => i.wrapping_mul(3) %dofuture%).unwrap();
        assert_eq!(
            b,
            (-128i8..=127)
                .map(|i| i.wrapping_mul(3))
                .collect::<Vec<_>>()
        );
        let c: Vec<i64> = foreach!(i in -5000i64..5000 => i * 7 %dofuture%).unwrap();
        assert_eq!(c, (-5000i64..5000).map(|i| i * 7).collect::<Vec<_>>());
        let d: Vec<usize> = foreach!(i in 3..3usize => i %dofuture%).unwrap();
        assert!(d.is_empty());
        // Slices of floats (as bytes), owned Vecs of integers with gaps.
        let xs = floats(20_000);
        let e: Vec<u64> = foreach!(x in &xs => x.to_bits() %dofuture%).unwrap();
        assert_eq!(e, bits(&xs), "{plan}");
        let gaps: Vec<u32> = (0..10_000).map(|i| i * 3 + (i % 7)).collect();
        let expected: Vec<u32> = gaps.iter().map(|g| g + 1).collect();
        let f: Vec<u32> = foreach!(g in gaps => g + 1 %dofuture% chunk_size = 333).unwrap();
        assert_eq!(f, expected, "{plan}");
        // Values that are not plain numbers, and zipped elements.
        let names: Vec<String> = foreach!(i in 0..50u16 => format!("n{i}") %dofuture%).unwrap();
        assert_eq!(names[49], "n49");
        let ys: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let sums: Vec<f32> =
            foreach!(a in &ys, b in 0..100u8 => a + f32::from(b) %dofuture%).unwrap();
        assert_eq!(sums, (0..100).map(|i| 2.0 * i as f32).collect::<Vec<_>>());
    }
}
