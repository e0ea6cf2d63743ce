//! Who is whose parent among the processes of this machine, for the tests
//! and benchmarks that reach the processes a cluster connection runs.
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

/// This process's children that have not ended (a cluster's ssh
/// connections, a pool's srun steps).
pub(crate) fn live_children() -> Vec<u32> {
    let me = std::process::id();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let mut fields = stat.rsplit(')').next().unwrap_or("").split_whitespace();
        let zombie = fields.next() == Some("Z");
        if !zombie && fields.next().and_then(|p| p.parse::<u32>().ok()) == Some(me) {
            out.push(pid);
        }
    }
    out
}

/// Waits (untimed, up to 10 s) until this process's children have ended:
/// the links of plans dropped before, so that one benchmark's tear-down does
/// not overlap the next one's start; says so when one outlives 10 s.
pub(crate) fn wait_for_children_to_end() {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !live_children().is_empty() {
        if std::time::Instant::now() > until {
            eprintln!(
                "warning: links of dropped plans still run after 10 s: {:?}",
                live_children()
            );
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
