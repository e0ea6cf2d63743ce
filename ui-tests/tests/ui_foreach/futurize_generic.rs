// A generic `#[futurize]` function needs its type parameters to be owned data.
// Fix: add `M: 'static` (and serde's traits) to the bound.
use futurize::futurize;

trait Model {
    fn predict(&self, x: f64) -> f64;
}

#[futurize]
fn predict_all<M: Model + Sync>(model: &M, xs: &[f64]) -> Vec<f64> {
    xs.iter().map(|x| model.predict(*x)).collect()
}

struct Line;
impl Model for Line {
    fn predict(&self, x: f64) -> f64 {
        x
    }
}

fn main() {
    println!("{:?}", predict_all(&Line, &[1.0]));
}
