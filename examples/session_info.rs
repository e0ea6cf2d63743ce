//! Prints what `session_info()` reports: futurize's build, this machine's
//! cores by each method, the plan in force and its workers, and for a
//! cluster or Slurm plan whether its hosts answer.
//!
//! ```text
//! cargo run --example session_info
//! FUTURIZE_PLAN=multiprocess:4 cargo run --example session_info
//! FUTURIZE_PLAN=cluster:n1,n1,n2 cargo run --example session_info
//! ```

use futurize::prelude::*;

fn main() {
    let mut info = session_info();
    info.check_hosts();
    print!("{info}");
}
