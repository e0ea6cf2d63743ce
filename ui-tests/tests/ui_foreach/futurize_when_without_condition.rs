// `when` takes a condition, evaluated at each call.
use futurize::futurize;

#[futurize(when)]
fn total(xs: &[f64]) -> f64 {
    xs.iter().map(|x| x * 2.0).sum()
}

fn main() {
    println!("{}", total(&[1.0]));
}
