//! A bench's private OpenSSH server (as tests/common/sshd.rs does it for
//! the tests: started once on a free port, ended by pid at exit).
//!
//! Shared by benches/cluster.rs and benches/slurm_pool.rs (`#[path]`).

use super::process_tree::alive;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// The running sshd's pid and directory, for the exit hook.
static RUNNING: Mutex<Option<(u32, PathBuf)>> = Mutex::new(None);

/// A running private sshd; stopped when dropped (or at exit).
pub(crate) struct Sshd {
    /// What runs ssh with the generated config: `ssh -F <dir>/ssh_config`.
    pub ssh_command: String,
}

/// Ends the sshd (by pid, waiting up to 5 s) and removes its directory.
pub(crate) fn stop() {
    let Some((pid, dir)) = RUNNING.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return;
    };
    // SAFETY: a plain signal to a process this binary started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    for _ in 0..100 {
        if !alive(pid) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if alive(pid) {
        // SAFETY: as above.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(dir.with_extension("lock"));
}

extern "C" fn stop_at_exit() {
    stop();
}

impl Drop for Sshd {
    fn drop(&mut self) {
        stop();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("a bound address").port()
}

/// Starts the private sshd; `None` (with a message) when this machine
/// has no OpenSSH server.
pub(crate) fn start() -> Option<Sshd> {
    if !std::path::Path::new("/usr/sbin/sshd").exists() {
        println!(
            "SKIPPED: the cluster benchmarks need OpenSSH's sshd (/usr/sbin/sshd): \
             apt-get install openssh-server (.ci/run does)"
        );
        return None;
    }
    let dir = std::env::temp_dir().join(format!("futurize-bench-sshd-{}", std::process::id()));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-sshd.sh");
    // A free port can be taken between the probe and sshd's bind: try a few.
    let mut failures = Vec::new();
    for _ in 0..3 {
        let out = Command::new("bash")
            .arg(script)
            .arg("start")
            .env("SSHD_DIR", &dir)
            .env("SSHD_PORT", free_port().to_string())
            .output()
            .expect("bash runs");
        if out.status.success() {
            let pid: u32 = std::fs::read_to_string(dir.join("sshd.pid"))
                .expect("the script writes sshd.pid")
                .trim()
                .parse()
                .expect("a pid");
            *RUNNING.lock().unwrap_or_else(|p| p.into_inner()) = Some((pid, dir.clone()));
            // SAFETY: registers a plain extern "C" function.
            unsafe { libc::atexit(stop_at_exit) };
            return Some(Sshd {
                ssh_command: format!("ssh -F {}", dir.join("ssh_config").display()),
            });
        }
        failures.push(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    panic!("scripts/test-sshd.sh start failed: {}", failures.join("\n"));
}
