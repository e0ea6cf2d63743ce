//! File descriptors for a pool of worker processes.
//!
//! A local worker costs the leader three descriptors: the pipe to its
//! stdin, the pipe from its stdout, and the file its stderr is captured in
//! (a remote one costs two: the ends of its pipe from the host's
//! connection). A thousand workers need more than the common default soft
//! limit of 1024, so a pool raises the soft limit to the hard one, as Go's
//! runtime does at start; when even the hard limit is too low, it says so
//! before starting any worker, with how many it needs and how to get them.

use crate::Error;

/// Descriptors a local worker costs the leader.
pub(crate) const PER_WORKER: u64 = 3;

/// Descriptors kept for everything else the program opens.
const HEADROOM: u64 = 64;

/// Makes room for `workers` workers: raises the soft limit on open files
/// (never lowers it) up to the hard one.
pub(crate) fn make_room(workers: usize) -> Result<(), Error> {
    let needed = (workers as u64)
        .saturating_mul(PER_WORKER)
        .saturating_add(HEADROOM);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Ok(()); // cannot tell: go on, and a failing spawn will say so
    }
    if limit.rlim_cur >= needed {
        return Ok(());
    }
    if limit.rlim_max < needed {
        return Err(Error::Launch {
            what: format!("{workers} worker processes"),
            reason: format!(
                "they need about {needed} open files ({PER_WORKER} per worker and {HEADROOM} \
                 more), but this process may open at most {} (the hard limit); raise it \
                 with `ulimit -Hn {needed}` as root, `LimitNOFILE=` in a systemd unit, or \
                 `nofile` in /etc/security/limits.conf, or use fewer workers",
                limit.rlim_max
            ),
        });
    }
    let raised = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit reads the struct we own; raising the soft limit up
    // to the hard one is always allowed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(Error::Launch {
            what: format!("{workers} worker processes"),
            reason: format!(
                "they need about {needed} open files and the soft limit is {}; raising it \
                 failed: {}",
                limit.rlim_cur,
                std::io::Error::last_os_error()
            ),
        });
    }
    log::debug!(
        "futurize: raised the open-file limit from {} to {} for {workers} workers",
        limit.rlim_cur,
        limit.rlim_max
    );
    Ok(())
}
