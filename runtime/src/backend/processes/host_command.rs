//! How the leader reaches a host of a cluster plan: the start-up script
//! that finds (or receives) this executable there and starts it as the
//! host's agent, and the ssh or srun command that runs that script.

use crate::plan::{Cluster, Host, Via};
use crate::protocol::agent::SEND_EXECUTABLE;
use crate::protocol::{hex, identity};
use std::process::Command;

/// Quotes `text` for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The script that finds (or receives) this executable on the host and
/// starts it as the host's agent.
pub(super) fn start_script(always_copy: bool) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| format!("the leader's executable: {e}"))?;
    let size = std::fs::metadata("/proc/self/exe")
        .map_err(|e| format!("the leader's executable: {e}"))?
        .len();
    let id = hex(identity::build_id());
    Ok(format!(
        r#"exe={exe}; id={id}; size={size}
dir="${{XDG_CACHE_HOME:-$HOME/.cache}}/futurize"; cached="$dir/$id"
try() {{
  [ -f "$1" ] && [ -x "$1" ] && [ "$(($(wc -c < "$1")))" -eq "$size" ] || return 1
  FUTURIZE_AGENT="$id" "$1"; rc=$?
  [ "$rc" -eq 75 ] && return 1
  exit "$rc"
}}
{try_exe}try "$cached"
mkdir -p "$dir" && chmod 700 "$dir" || exit 1
tmp="$dir/.$id.$$"
printf '%s\n' {send}
head -c "$size" > "$tmp"
if [ "$(($(wc -c < "$tmp")))" -ne "$size" ]; then rm -f "$tmp"; echo "futurize: the copy of the executable in $dir is incomplete" >&2; exit 1; fi
chmod 700 "$tmp" && mv -f "$tmp" "$cached" || {{ rm -f "$tmp"; exit 1; }}
try "$cached"
echo "futurize: $cached does not start as a futurize agent of build $id" >&2
exit 1
"#,
        exe = shell_quote(&exe.to_string_lossy()),
        try_exe = if always_copy { "" } else { "try \"$exe\"\n" },
        send = SEND_EXECUTABLE,
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
