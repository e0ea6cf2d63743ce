// A future's value travels back as bytes: `Box<dyn Error>` cannot be turned into bytes.
// Fix: return the error as text (`.map_err(|e| e.to_string())`) or a serializable error type.
use futurize::prelude::*;
use std::error::Error;

fn main() {
    let text = String::from("1.5");
    let _f = future!({
        let v: Result<f64, Box<dyn Error>> = text.parse::<f64>().map_err(|e| e.into());
        v
    });
}
