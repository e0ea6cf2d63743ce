// An open file belongs to this process: a worker cannot rebuild it from bytes.
// Fix: capture the path and open the file in the body.
use futurize::prelude::*;

fn main() {
    let log = std::fs::File::create("log.txt").unwrap();
    let _ys: Result<Vec<bool>, futurize::Error> =
        foreach!(i in 0..3 => log.metadata().is_ok() && i > 0 %dofuture%);
}
