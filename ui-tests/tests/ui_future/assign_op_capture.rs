// Compound assignment to a captured variable is refused for the same reason.
use futurize::prelude::*;

fn main() {
    let mut total = 0;
    let _f = future!({
        total += 1;
        total
    });
    println!("{total}");
}
