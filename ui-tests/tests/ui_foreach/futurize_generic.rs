// A generic `#[futurize]` function whose pipeline captures a `&M` needs `M: 'static`:
// a worker rebuilds every capture as an owned value. The error says which bound to add.
use futurize::futurize;
use serde::{Serialize, de::DeserializeOwned};

trait Model {
    fn predict(&self, x: f64) -> f64;
}

#[futurize]
fn predict_all<M: Model + Serialize + DeserializeOwned + Sync>(model: &M, xs: &[f64]) -> Vec<f64> {
    xs.iter().map(|x| model.predict(*x)).collect()
}

fn main() {}
