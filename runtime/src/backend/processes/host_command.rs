//! How the leader reaches a host of a cluster plan: the start-up script
//! that finds (or receives) this executable there and starts it as the
//! host's agent, the ssh or srun command that runs that script, and the
//! leader's side of the start-up (`bootstrap`, the connection's stderr).

use crate::plan::{Cluster, Host, Via};
use crate::protocol::agent::{AGENT_READY, FromAgent, SEND_EXECUTABLE, connection_frame_limit};
use crate::protocol::{hex, identity, wire};
use crate::sync::lock;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{ChildStdin, ChildStdout, Command};
use std::sync::{Arc, Mutex};

/// Quotes `text` for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The SHA-256 of this executable, in hex, as `sha256sum` gives it (the
/// tool every host runs to check a candidate; measured once).
fn own_sha256() -> Result<String, String> {
    static SUM: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    SUM.get_or_init(|| {
        // This process's file, even if renamed since (`/proc/self` would be
        // sha256sum's own).
        let exe = format!("/proc/{}/exe", std::process::id());
        let out = Command::new("sha256sum").arg(&exe).output().map_err(|e| {
            format!(
                "`sha256sum` (coreutils), which checks the executable a host runs, \
                     could not run here: {e}"
            )
        })?;
        let text = String::from_utf8_lossy(&out.stdout);
        match text.get(..64) {
            Some(sum) if out.status.success() && sum.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok(sum.to_string())
            }
            _ => Err(format!(
                "`sha256sum {exe}` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    })
    .clone()
}

/// The script that finds (or receives) this executable on the host and
/// starts it as the host's agent.
///
/// A candidate (the leader's own path, where a shared file system holds
/// the same build; else the per-user cache) runs only when the file is
/// this user's, writable by no one else, and its SHA-256 is the leader's;
/// all three are checked on one open descriptor, and what runs is the file
/// on that descriptor, so the file cannot be swapped between the check and
/// the run. Anything else is replaced by a copy the leader sends.
pub(super) fn start_script(always_copy: bool) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| format!("the leader's executable: {e}"))?;
    let size = std::fs::metadata("/proc/self/exe")
        .map_err(|e| format!("the leader's executable: {e}"))?
        .len();
    let id = hex(identity::build_id());
    let sum = own_sha256()?;
    Ok(format!(
        r#"exe={exe}; id={id}; size={size}; sum={sum}
command -v sha256sum >/dev/null || {{ echo "futurize: this host has no sha256sum (coreutils), which checks an executable before it runs" >&2; exit 1; }}
dir="${{XDG_CACHE_HOME:-$HOME/.cache}}/futurize"; cached="$dir/$id"
try() {{
  [ -f "$1" ] || return 1
  exec 3< "$1" || return 1
  if [ -O /proc/self/fd/3 ] && [ "$(sha256sum <&3 | cut -c1-64)" = "$sum" ]; then
    case "$(stat -L -c %A /proc/self/fd/3)" in ?????w*|????????w*) exec 3<&-; return 1;; esac
    FUTURIZE_AGENT="$id" {fd_env}=3 /proc/self/fd/3; rc=$?
    exec 3<&-
    [ "$rc" -eq 75 ] && return 1
    exit "$rc"
  fi
  exec 3<&-
  return 1
}}
{try_exe}try "$cached"
mkdir -p "$dir" && chmod 700 "$dir" || exit 1
tmp="$dir/.$id.$$"
rm -f "$tmp"
printf '%s\n' {send}
(umask 077; head -c "$size" > "$tmp")
if [ "$(($(wc -c < "$tmp")))" -ne "$size" ]; then rm -f "$tmp"; echo "futurize: the copy of the executable in $dir is incomplete" >&2; exit 1; fi
chmod 700 "$tmp" && mv -f "$tmp" "$cached" || {{ rm -f "$tmp"; exit 1; }}
try "$cached"
echo "futurize: $cached is not the leader's executable (its SHA-256 or owner differs, or it does not start as a futurize agent of build $id)" >&2
exit 1
"#,
        exe = shell_quote(&exe.to_string_lossy()),
        try_exe = if always_copy { "" } else { "try \"$exe\"\n" },
        send = SEND_EXECUTABLE,
        fd_env = crate::protocol::agent::AGENT_FD_ENV,
    ))
}

/// Whether srun starts the agents: inside a Slurm allocation whose nodes
/// include every host, unless the plan says otherwise.
fn via_srun(spec: &Cluster) -> bool {
    match spec.via {
        Via::Ssh => false,
        Via::Srun => true,
        Via::Auto => {
            let nodes = std::env::var("SLURM_JOB_NODELIST")
                .ok()
                .and_then(|l| crate::cores::parse_hostlist(&l).ok());
            std::env::var_os("SLURM_JOB_ID").is_some()
                && nodes.is_some_and(|n| spec.host_list().iter().all(|h| n.contains(&h.name)))
        }
    }
}

/// The command that starts `script` on `host`: over srun inside an
/// allocation, else over ssh as the plan and `FUTURIZE_SSH_COMMAND` say.
pub(crate) fn command_for(spec: &Cluster, host: &Host, script: &str) -> Command {
    if let Some((job, pid_file)) = &spec.in_job {
        // A step of a worker pool's allocation, from outside it: the
        // script's shell lives as long as the agent, so its pid tells the
        // job's holding loop that the agent runs.
        let mut c = Command::new("srun");
        c.arg(format!("--jobid={job}")).args([
            "--overlap",
            "--unbuffered",
            "--nodes=1",
            "--ntasks=1",
            "--quiet",
            "sh",
            "-c",
        ]);
        c.arg(format!(
            "(umask 077; echo $$ > {})\n{script}",
            shell_quote(&pid_file.to_string_lossy())
        ));
        return c;
    }
    if via_srun(spec) {
        let mut c = Command::new("srun");
        c.args([
            "--overlap",
            // Frames must not wait in srun's line buffer.
            "--unbuffered",
            "--nodes=1",
            "--ntasks=1",
            "--quiet",
            "--nodelist",
        ])
        .arg(&host.name)
        .args(["sh", "-c", script]);
        return c;
    }
    let ssh = spec
        .ssh_command
        .clone()
        .or_else(|| std::env::var("FUTURIZE_SSH_COMMAND").ok());
    let mut c = match ssh {
        Some(ssh) if !ssh.trim().is_empty() => {
            // As git runs GIT_SSH_COMMAND: through the shell, arguments after.
            let mut c = Command::new("sh");
            c.arg("-c").arg(format!("{ssh} \"$@\"")).arg("futurize-ssh");
            c
        }
        _ => Command::new("ssh"),
    };
    // The user's options first: for ssh the first value of an option wins.
    c.args(&spec.ssh_options)
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-T"]);
    if let Some(port) = host.port {
        c.arg("-p").arg(port.to_string());
    }
    if let Some(key) = &spec.identity_file {
        c.arg("-i").arg(key);
    }
    c.arg("--")
        .arg(host.destination())
        .arg(format!("sh -c {}", shell_quote(script)));
    c
}

/// Lines of a connection's stderr kept for error messages.
const STDERR_LINES: usize = 12;

/// Runs `program` with its stderr lines kept (the last few) and passed on to
/// this process's stderr once the connection is up.
pub(super) fn keep_stderr(
    from: impl Read + Send + 'static,
    host: String,
) -> Arc<Mutex<VecDeque<String>>> {
    let kept = Arc::new(Mutex::new(VecDeque::new()));
    let tail = kept.clone();
    let _ = std::thread::Builder::new()
        .name(format!("futurize-stderr-{host}"))
        .spawn(move || {
            for line in BufReader::new(from).lines() {
                let Ok(line) = line else { break };
                eprintln!("[{host}] {line}");
                let mut tail = lock(&tail);
                if tail.len() == STDERR_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
    kept
}

pub(super) fn tail_of(stderr: &Mutex<VecDeque<String>>) -> String {
    let lines: Vec<String> = lock(stderr).iter().cloned().collect();
    if lines.is_empty() {
        "nothing on stderr".into()
    } else {
        format!("its stderr: {}", lines.join(" | "))
    }
}

/// Reads the start-up script's lines until the agent is ready, sending the
/// executable when asked; the agent's pid.
pub(super) fn bootstrap(
    stdin: &mut ChildStdin,
    stdout: &mut BufReader<ChildStdout>,
) -> Result<u32, String> {
    let mut line = String::new();
    loop {
        line.clear();
        match stdout.read_line(&mut line) {
            Ok(0) => return Err("the host ended the connection before the agent started".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("reading from the connection: {e}")),
        }
        match line.trim_end() {
            AGENT_READY => break,
            SEND_EXECUTABLE => {
                let mut exe = std::fs::File::open("/proc/self/exe")
                    .map_err(|e| format!("the leader's executable: {e}"))?;
                std::io::copy(&mut exe, stdin)
                    .and_then(|_| stdin.flush())
                    .map_err(|e| format!("copying the executable to the host: {e}"))?;
            }
            // Text from the user's login files: not ours.
            _ => {}
        }
    }
    match wire::read_message::<_, FromAgent>(stdout, connection_frame_limit()) {
        Ok(Some((FromAgent::Ready { pid }, _))) => Ok(pid),
        Ok(other) => Err(format!("the agent said {other:?} instead of hello")),
        Err(e) => Err(e.to_string()),
    }
}
