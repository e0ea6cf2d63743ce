// `#[futurize]` does not rewrite `xs.chunks(4).map(..)`: it says to collect owned chunks.
use futurize::futurize;

#[futurize]
fn chunk_sums(xs: &[f64]) -> Vec<f64> {
    xs.chunks(4).map(|c| c.iter().sum::<f64>()).collect()
}

fn main() {
    println!("{:?}", chunk_sums(&[1.0, 2.0]));
}
