// A future works on its own copy: assigning to a captured variable would be lost.
// Fix: return the new value: `let x = future!(x + 5).value()?;`
use futurize::prelude::*;

fn main() {
    let mut x = 1;
    let _f = future!({
        x = 5;
        x
    });
    println!("{x}");
}
