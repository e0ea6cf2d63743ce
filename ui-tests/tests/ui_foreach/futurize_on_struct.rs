// `#[futurize]` goes on functions and methods.
use futurize::futurize;

#[futurize]
struct Settings {
    n: usize,
}

fn main() {}
