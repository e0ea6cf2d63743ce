// `#[futurize]` rewrites `filter_map`, not `filter(..).map(..)`: it says so.
use futurize::futurize;

#[futurize]
fn squares_of_positive(xs: &[f64]) -> Vec<f64> {
    xs.iter().filter(|x| **x > 0.0).map(|x| x * x).collect()
}

fn main() {
    println!("{:?}", squares_of_positive(&[1.0, -2.0]));
}
