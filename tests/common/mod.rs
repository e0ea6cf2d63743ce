//! Helpers shared by the integration tests: watching worker processes, and
//! the private sshd of the cluster cases. Not every test binary uses all.
#![allow(dead_code)]

/// Whether process `pid` runs (a zombie still has a /proc entry; it does not
/// count).
pub(crate) fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

pub(crate) mod numbers;
pub(crate) mod process_tree;
pub(crate) mod slurm;
pub(crate) mod sshd;
