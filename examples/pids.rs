//! "Running in process": each of five futures returns the id of the process
//! that evaluated it.
//!
//! ```text
//! cargo run --example pids                                   # sequential: all the leader's pid
//! FUTURIZE_PLAN=multiprocess:2 cargo run --example pids      # two worker processes
//! FUTURIZE_PLAN=multiprocess:2:fresh cargo run --example pids # a new process per future
//! ```

use futurize::prelude::*;

fn main() -> Result<(), futurize::Error> {
    println!("plan: {}", current_plan()?);
    println!("leader pid: {}", std::process::id());
    let futures: Vec<Future<u32>> = (1..=5).map(|_| future!(std::process::id())).collect();
    for (i, pid) in value(futures)?.into_iter().enumerate() {
        println!("future {} ran in process {pid}", i + 1);
    }
    Ok(())
}
