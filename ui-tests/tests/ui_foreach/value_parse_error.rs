// A body's value travels back as bytes: `ParseFloatError` is not serializable.
// Fix: return the error as text (`.map_err(|e| e.to_string())`).
use futurize::prelude::*;

fn main() {
    let xs = vec!["1.5".to_string(), "x".to_string()];
    let _ys = foreach!(s in &xs => s.parse::<f64>() %dofuture%);
}
