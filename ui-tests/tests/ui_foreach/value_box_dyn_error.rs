// A body's value travels back as bytes: `Box<dyn Error>` cannot be turned into bytes.
// Fix: return the error as text (`.map_err(|e| e.to_string())`) or a serializable error type.
use futurize::prelude::*;
use std::error::Error;

fn main() {
    let xs = vec!["1.5".to_string(), "x".to_string()];
    let _ys = foreach!(s in &xs => {
        let v: Result<f64, Box<dyn Error>> = s.parse::<f64>().map_err(|e| e.into());
        v
    } %dofuture%);
}
