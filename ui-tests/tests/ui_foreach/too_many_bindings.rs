// A `foreach!` zips at most 8 bindings; the 9th is an error naming the fix.
use futurize::prelude::*;

fn main() {
    let xs = vec![1u32, 2];
    let _ys: Result<Vec<u32>, futurize::Error> = foreach!(
        a in &xs, b in &xs, c in &xs, d in &xs, e in &xs, f in &xs, g in &xs, h in &xs, i in &xs
        => a + b + c + d + e + f + g + h + i %dofuture%
    );
}
