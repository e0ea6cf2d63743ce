// `#[futurize]` says what it looks for when a function has no pipeline to parallelize.
use futurize::futurize;

#[futurize]
fn total(xs: &[f64]) -> f64 {
    let mut sum = 0.0;
    for x in xs {
        sum += x;
    }
    sum
}

fn main() {
    println!("{}", total(&[1.0]));
}
