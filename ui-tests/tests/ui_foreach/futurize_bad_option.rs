// `combine` belongs to foreach!; under #[futurize] the pipeline itself combines values.
use futurize::futurize;

#[futurize(combine = |a, b| a + b)]
fn total(xs: &[f64]) -> f64 {
    xs.iter().map(|x| x * 2.0).sum()
}

fn main() {
    println!("{}", total(&[1.0]));
}
