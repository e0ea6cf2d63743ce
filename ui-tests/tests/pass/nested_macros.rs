// A `foreach!` or `future!` inside a body (of `future!`, `foreach!` or a
// `#[futurize]` pipeline): its element patterns, operator and option names are
// not captures; what its body and option values use from outside are.
use futurize::prelude::*;

#[futurize]
fn multiples(ns: &[u32], k: u32) -> Vec<u32> {
    ns.iter()
        .map(|n| {
            let terms: Vec<u32> =
                futurize::foreach!(i in 0..*n => i * k %dofuture% chunk_size = 2).unwrap();
            terms.into_iter().sum::<u32>()
        })
        .collect()
}

#[futurize]
fn shifted(ns: &[u32], k: u32) -> Vec<u32> {
    ns.iter()
        .map(|n| ::futurize::future!(n + k, label = "shift").value().unwrap())
        .collect()
}

fn main() {
    let f = future!({
        let pids: Vec<u32> = futurize::foreach!(_i in 0..12u32 => {
            std::process::id()
        } %dofuture% chunk_size = 1)
        .unwrap();
        pids
    });
    assert_eq!(f.value().unwrap().len(), 12);

    let (k, chunk, tag) = (3u32, 2usize, "inner");
    let g: Future<Vec<u32>> = ::futurize::future!(
        foreach!(i in 0..4u32 => i * k %dofuture% chunk_size = chunk, label = tag).unwrap()
    );
    assert_eq!(g.value().unwrap(), [0, 3, 6, 9]);

    let h = future!(futurize::future!(k + 1, label = tag).value().unwrap());
    assert_eq!(h.value().unwrap(), 4);

    let ys: Vec<u32> = foreach!(x in 1..=3u32 => {
        future!(x * k, label = tag).value().unwrap()
    } %dofuture%)
    .unwrap();
    assert_eq!(ys, [3, 6, 9]);

    let zs: Vec<u32> = foreach!((a, b) in [(1u32, 10u32), (2, 20)] => {
        futurize::foreach!(c in 0..a => c + b %do% combine = |s, t| s + t).unwrap()
    } %dofuture%)
    .unwrap();
    assert_eq!(zs, [10, 41]);

    assert_eq!(multiples(&[1, 2, 3], k), [0, 3, 9]);
    assert_eq!(shifted(&[1, 2], k), [4, 5]);
}
