// `when` takes a `bool` condition: a literal other than `true`/`false` is refused
// by the macro, any other expression by the type checker.
use futurize::futurize;

#[futurize(when = 100)]
fn total(xs: &[f64]) -> f64 {
    xs.iter().map(|x| x * 2.0).sum()
}

#[futurize(when = xs.len())]
fn doubled(xs: &[f64]) -> Vec<f64> {
    xs.iter().map(|x| x * 2.0).collect()
}

fn main() {
    println!("{} {:?}", total(&[1.0]), doubled(&[1.0]));
}
