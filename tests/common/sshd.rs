//! A private OpenSSH server on 127.0.0.1–3 for the cluster tests, started by
//! the project's own script (scripts/test-sshd.sh) once per test binary, on
//! a free port, and ended by pid when the binary exits.
//!
//! Without `/usr/sbin/sshd` the cluster cases are skipped with a message
//! saying why (`.ci/run` installs openssh-server, so CI always runs them).

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Says which cases are skipped and why, past `cargo test`'s capture of
/// `eprintln!` (which would hide the line for a passing test).
fn skipped(why: String) {
    let _ = writeln!(std::io::stderr(), "{why}");
}

/// A running private sshd.
pub(crate) struct Sshd {
    pub dir: PathBuf,
    pub pid: u32,
    /// What runs ssh with the generated config: `ssh -F <dir>/ssh_config`.
    pub ssh_command: String,
}

static SSHD: OnceLock<Option<Sshd>> = OnceLock::new();
static DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn stop_at_exit() {
    if let Some(Some(s)) = SSHD.get() {
        stop(s.pid);
    }
    if let Some(dir) = DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
        // The script's lock file sits beside the directory.
        let _ = std::fs::remove_file(dir.with_extension("lock"));
    }
}

/// Ends `pid` and waits (up to 5 s) until it is gone.
fn stop(pid: u32) {
    // SAFETY: a plain signal to a process this binary started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    for _ in 0..100 {
        if !super::alive(pid) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().unwrap().port()
}

/// The private sshd, started on first use; `None` (with a message) when
/// this machine has no OpenSSH server.
pub(crate) fn sshd() -> Option<&'static Sshd> {
    SSHD.get_or_init(|| {
        if !std::path::Path::new("/usr/sbin/sshd").exists() {
            skipped(
                "SKIPPED: the cluster cases need OpenSSH's sshd (/usr/sbin/sshd): \
                 apt-get install openssh-server (.ci/run does)"
                    .to_string(),
            );
            return None;
        }
        let dir = std::env::temp_dir().join(format!("futurize-sshd-{}", std::process::id()));
        let _ = DIR.set(dir.clone());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-sshd.sh");
        let port = free_port();
        let out = Command::new("bash")
            .arg(script)
            .arg("start")
            .env("SSHD_DIR", &dir)
            .env("SSHD_PORT", port.to_string())
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "scripts/test-sshd.sh start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let pid: u32 = std::fs::read_to_string(dir.join("sshd.pid"))
            .expect("the script writes sshd.pid")
            .trim()
            .parse()
            .expect("a pid");
        // SAFETY: registers a plain extern "C" function.
        unsafe { libc::atexit(stop_at_exit) };
        Some(Sshd {
            ssh_command: format!("ssh -F {}", dir.join("ssh_config").display()),
            dir,
            pid,
        })
    })
    .as_ref()
}

/// `Cluster::hosts(hosts)` through the private sshd, or `None` (skipped).
pub(crate) fn cluster(hosts: &[&str]) -> Option<futurize::Cluster> {
    let s = sshd()?;
    Some(futurize::Cluster::hosts(hosts).ssh_command(s.ssh_command.clone()))
}

/// The user the private sshd logs in as (its `User`; see
/// scripts/test-sshd.sh).
pub(crate) fn login_user() -> Option<String> {
    let s = sshd()?;
    let config = std::fs::read_to_string(s.dir.join("ssh_config")).ok()?;
    config
        .lines()
        .find_map(|l| l.trim().strip_prefix("User "))
        .map(|u| u.trim().to_string())
}
