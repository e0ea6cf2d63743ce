//! Helpers shared by the integration tests that watch worker processes.

/// Whether process `pid` runs (a zombie still has a /proc entry; it does not
/// count).
pub fn alive(pid: u32) -> bool {
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

#[allow(dead_code)] // not every test binary runs a cluster
pub mod sshd;
