// `return` and `?` cannot leave a future's body: it runs as a function of its own.
// Fix: make the body's value say what happened (a `Result`), and act on it after `.value()`.
use futurize::prelude::*;

fn parse(text: &str) -> Result<i32, std::num::ParseIntError> {
    let f = future!({
        if text.is_empty() {
            return Ok(0);
        }
        text.parse::<i32>()?
    });
    Ok(f.value().unwrap())
}

fn main() {
    let _ = parse("1");
}
