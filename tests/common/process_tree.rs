//! Who is whose parent among the processes of this machine, for the tests
//! and benchmarks that reach the processes a cluster connection runs.
#![allow(dead_code)]

/// The parent of process `pid` (0 when it cannot be read).
pub(crate) fn parent_of(pid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// The nearest ancestor of `pid` that is an sshd process (the session
/// serving its connection); 0 when there is none.
pub(crate) fn sshd_above(mut pid: u32) -> u32 {
    while pid > 1 {
        pid = parent_of(pid);
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.starts_with("sshd") {
            return pid;
        }
    }
    0
}
