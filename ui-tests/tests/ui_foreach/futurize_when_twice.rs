// `when` is one condition: give it once (combine conditions with `&&`).
use futurize::futurize;

#[futurize(when = xs.len() > 100, when = xs.len() < 10_000)]
fn total(xs: &[f64]) -> f64 {
    xs.iter().map(|x| x * 2.0).sum()
}

fn main() {
    println!("{}", total(&[1.0]));
}
