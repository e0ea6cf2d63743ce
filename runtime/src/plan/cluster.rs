//! The cluster plan: workers on other machines, started over ssh (or srun
//! inside a Slurm allocation), as R's `plan(cluster, workers = c("n1", "n1",
//! "n2"))`.
//!
//! A host named `k` times runs `k` workers. The text form is
//! `cluster:n1,n1,n2` (with `user@host` and `host:port`); a bare `cluster`
//! means [`available_workers`](crate::available_workers): inside a Slurm
//! allocation its nodes × tasks, else this machine × its cores. What the
//! text form cannot say (an identity file, ssh options, variables to pass
//! on) is set with the builder methods.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// One host of a cluster: `[user@]name[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Host {
    /// The login name, when given (`user@host`).
    pub user: Option<String>,
    /// The host name or address (an alias of the user's ssh config works).
    pub name: String,
    /// The ssh port, when given (`host:port`).
    pub port: Option<u16>,
}

impl Host {
    /// Parses `[user@]name[:port]`, an IPv6 address in brackets
    /// (`[::1]:2222`).
    ///
    /// Names pass an allowlist, as they reach ssh (and through a
    /// `ProxyCommand`'s `%h`, possibly a shell): a host name has ASCII
    /// letters, digits, `.`, `-` and `_` ([`HOST_CHARACTERS`]), an IPv6
    /// address hex digits, `:` and `.`, a user name letters, digits, `.`,
    /// `-` and `_`; neither starts with `-`.
    ///
    /// ```
    /// use futurize_runtime::plan::Host;
    /// let h = Host::parse("me@node2:2222").unwrap();
    /// assert_eq!((h.user.as_deref(), h.name.as_str(), h.port), (Some("me"), "node2", Some(2222)));
    /// assert_eq!(h.to_string(), "me@node2:2222");
    /// assert_eq!(Host::parse("[::1]:22").unwrap().name, "::1");
    /// assert!(Host::parse("n1;reboot").unwrap_err().contains("';'"));
    /// ```
    pub fn parse(text: &str) -> Result<Host, String> {
        let text = text.trim();
        let (user, rest) = match text.rsplit_once('@') {
            Some((u, r)) => (Some(check_user(u, text)?), r),
            None => (None, text),
        };
        let (name, port) = split_port(rest, text)?;
        check_name(name, text)?;
        Ok(Host {
            user,
            name: name.to_string(),
            port,
        })
    }

    /// `user@name` as ssh takes it.
    pub(crate) fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// What a host name may hold, for errors and docs.
///
/// ```
/// assert!(futurize_runtime::plan::HOST_CHARACTERS.contains("digits"));
/// ```
pub const HOST_CHARACTERS: &str = "ASCII letters, digits, `.`, `-` and `_`, not first `-`; an \
     IPv6 address goes in brackets, `[::1]`; a user name (`user@`) likewise";

/// `rest` (a host without its user) as its name and port.
fn split_port<'a>(rest: &'a str, text: &str) -> Result<(&'a str, Option<u16>), String> {
    let (name, port) = match rest.strip_prefix('[') {
        Some(inner) => match inner.split_once(']') {
            Some((address, "")) => return ipv6(address, text).map(|a| (a, None)),
            Some((address, after)) => (ipv6(address, text)?, after.strip_prefix(':')),
            None => return Err(format!("`{text}` opens a `[` it does not close")),
        },
        None => match rest.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (rest, None),
        },
    };
    let port = match port {
        None if rest.starts_with('[') && !rest.ends_with(']') => {
            return Err(format!(
                "`{text}` has something other than `:port` after `]`"
            ));
        }
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port > 0 => Some(port),
            _ if p.contains(':') && !rest.starts_with('[') => {
                return Err(format!(
                    "`{text}`: an IPv6 address goes in brackets, as `[::1]` or `[::1]:22`"
                ));
            }
            _ => return Err(format!("`{p}` in `{text}` is not a port (1 to 65535)")),
        },
    };
    Ok((name, port))
}

/// The address inside `[...]`, if it is one.
fn ipv6<'a>(address: &'a str, text: &str) -> Result<&'a str, String> {
    let fits = address.contains(':')
        && address
            .chars()
            .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.'));
    if fits {
        Ok(address)
    } else {
        Err(format!(
            "`{address}` in `{text}` is not an IPv6 address (hex digits, `:` and `.`)"
        ))
    }
}

/// Checks a host name against the allowlist (an IPv6 address was checked
/// by [`ipv6`]).
fn check_name(name: &str, text: &str) -> Result<(), String> {
    if name.contains(':') {
        return Ok(());
    }
    if name.is_empty() {
        return Err(format!("`{text}` has no host name: {HOST_CHARACTERS}"));
    }
    allowed(name, text, "host name")
}

fn check_user(user: &str, text: &str) -> Result<String, String> {
    if user.is_empty() {
        return Err(format!("`{text}` has an empty user name before `@`"));
    }
    allowed(user, text, "user name")?;
    Ok(user.to_string())
}

/// Whether `part` has only letters, digits, `.`, `-` and `_`, and does not
/// start with `-` (which ssh would read as an option).
fn allowed(part: &str, text: &str, what: &str) -> Result<(), String> {
    if part.starts_with('-') {
        return Err(format!(
            "`{text}` is not a host: its {what} starts with `-`, which ssh would read as an \
             option"
        ));
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if let Some(bad) = part.chars().find(|&c| !ok(c)) {
        return Err(format!(
            "`{text}` is not a host: its {what} `{part}` holds {bad:?} (a host name has \
             {HOST_CHARACTERS})"
        ));
    }
    Ok(())
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        if self.name.contains(':') {
            write!(f, "[{}]", self.name)?;
        } else {
            f.write_str(&self.name)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// How a cluster's workers are started on their hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Via {
    /// `srun` inside a Slurm allocation whose nodes include every host, else
    /// ssh.
    #[default]
    Auto,
    /// Always ssh.
    Ssh,
    /// Always `srun --overlap` (inside a Slurm allocation).
    Srun,
}

/// Workers on other machines (R's `cluster` plan): one ssh connection per
/// host, whatever its worker count, carrying every worker's frames, so no
/// port is opened anywhere and sshd's `MaxStartups` never caps the workers.
///
/// ssh runs as the user runs it (their `~/.ssh/config`, agent, known hosts);
/// `FUTURIZE_SSH_COMMAND` replaces the `ssh` command the way
/// `GIT_SSH_COMMAND` does for git. A worker runs this same executable: where
/// the leader's path holds the same build on the host (a shared file system)
/// it is used as is, else the leader copies its executable into a per-user
/// cache on the host (`~/.cache/futurize/<build id>`).
///
/// ```
/// use futurize_runtime::{Cluster, Plan};
/// let p: Plan = Cluster::hosts(["n1", "n1", "me@n2:2222"]).into();
/// assert_eq!(p.to_string(), "cluster:n1,n1,me@n2:2222");
/// assert_eq!(p.first().workers(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cluster {
    pub(crate) hosts: Vec<Host>,
    pub(crate) user: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) identity_file: Option<PathBuf>,
    pub(crate) ssh_options: Vec<String>,
    pub(crate) ssh_command: Option<String>,
    pub(crate) env: Vec<String>,
    pub(crate) via: Via,
    pub(crate) always_ship: bool,
    pub(crate) launch_timeout: Duration,
    /// Set for a worker pool's allocation: its agent runs as a step of this
    /// Slurm job (`srun --jobid`), and writes its pid into this file, which
    /// the job's holding loop watches.
    pub(crate) in_job: Option<(String, PathBuf)>,
}

/// How long starting the workers of a host may take by default (the ssh
/// handshake, copying the executable, the worker handshakes).
pub const DEFAULT_LAUNCH_TIMEOUT: Duration = Duration::from_secs(60);

impl Cluster {
    /// Workers on `hosts`: a host named `k` times runs `k` workers.
    ///
    /// # Panics
    /// If `hosts` is empty or a name is not `[user@]host[:port]`: a plan in
    /// code is the programmer's choice (in `FUTURIZE_PLAN` the same
    /// mistakes are an `Error::Plan`).
    pub fn hosts<I, S>(hosts: I) -> Cluster
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let hosts: Vec<Host> = hosts
            .into_iter()
            .map(|h| Host::parse(h.as_ref()).unwrap_or_else(|e| panic!("Cluster::hosts: {e}")))
            .collect();
        assert!(
            !hosts.is_empty(),
            "Cluster::hosts: the list of hosts is empty; use Cluster::workers_auto() \
             for available_workers()"
        );
        Cluster::of(hosts)
    }

    /// One worker per entry of [`available_workers`](crate::available_workers)
    /// (R's `plan(cluster)`): inside a Slurm allocation its nodes × tasks,
    /// else this machine × its cores.
    pub fn workers_auto() -> Cluster {
        Cluster::hosts(crate::cores::available_workers())
    }

    pub(crate) fn of(hosts: Vec<Host>) -> Cluster {
        Cluster {
            hosts,
            user: None,
            port: None,
            identity_file: None,
            ssh_options: Vec::new(),
            ssh_command: None,
            env: Vec::new(),
            via: Via::Auto,
            always_ship: false,
            launch_timeout: DEFAULT_LAUNCH_TIMEOUT,
            in_job: None,
        }
    }

    /// The login name for hosts that do not name one.
    ///
    /// # Panics
    /// If the name has other than letters, digits, `.`, `-` and `_`, or
    /// starts with `-`.
    pub fn user(mut self, user: impl Into<String>) -> Cluster {
        let user = user.into();
        if let Err(e) = check_user(&user, &user) {
            panic!("Cluster::user: {e}");
        }
        self.user = Some(user);
        self
    }

    /// The ssh port for hosts that do not name one.
    pub fn port(mut self, port: u16) -> Cluster {
        self.port = Some(port);
        self
    }

    /// The private key ssh uses (`ssh -i`).
    pub fn identity_file(mut self, path: impl Into<PathBuf>) -> Cluster {
        self.identity_file = Some(path.into());
        self
    }

    /// More arguments for ssh, before the host: `["-o", "Compression=yes"]`.
    pub fn ssh_options<I, S>(mut self, options: I) -> Cluster
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.ssh_options.extend(options.into_iter().map(Into::into));
        self
    }

    /// The command that runs ssh, read by `sh` with ssh's arguments after it,
    /// as `FUTURIZE_SSH_COMMAND` (which it overrides): `"ssh -F ~/alt/config"`.
    pub fn ssh_command(mut self, command: impl Into<String>) -> Cluster {
        self.ssh_command = Some(command.into());
        self
    }

    /// Environment variables of the leader that workers get too (ssh
    /// forwards none; `RUST_LOG` and `RUST_BACKTRACE` always go).
    pub fn env<I, S>(mut self, names: I) -> Cluster
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.env.extend(names.into_iter().map(Into::into));
        self
    }

    /// How workers are started: ssh, srun, or srun inside an allocation and
    /// ssh elsewhere (the default).
    pub fn via(mut self, via: Via) -> Cluster {
        self.via = via;
        self
    }

    /// Copy the executable to every host's cache even where the leader's
    /// path holds the same build.
    pub fn always_copy_executable(mut self) -> Cluster {
        self.always_ship = true;
        self
    }

    /// How long starting a host's workers may take before it is an
    /// `Error::Launch` (default [`DEFAULT_LAUNCH_TIMEOUT`]).
    pub fn launch_timeout(mut self, limit: Duration) -> Cluster {
        self.launch_timeout = limit;
        self
    }

    /// The hosts, a host named `k` times `k` times.
    pub fn host_list(&self) -> &[Host] {
        &self.hosts
    }

    /// A host with the plan-wide user and port filled in where it names none.
    pub(crate) fn resolved(&self, host: &Host) -> Host {
        Host {
            user: host.user.clone().or_else(|| self.user.clone()),
            name: host.name.clone(),
            port: host.port.or(self.port),
        }
    }
}

impl fmt::Display for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cluster:")?;
        for (i, h) in self.hosts.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{h}")?;
        }
        Ok(())
    }
}

/// Parses the argument of `cluster:...` (none: `available_workers()`).
pub(crate) fn parse_hosts(arg: Option<&str>) -> Result<Cluster, String> {
    let Some(arg) = arg else {
        let hosts = crate::cores::available_workers();
        return hosts
            .iter()
            .map(|h| Host::parse(h))
            .collect::<Result<Vec<_>, _>>()
            .map(Cluster::of);
    };
    if arg.is_empty() {
        return Err(
            "`cluster:` needs host names after the colon, such as `cluster:n1,n1,n2`".into(),
        );
    }
    arg.split(',')
        .map(|h| {
            if h.trim().is_empty() {
                Err("a host name is empty (two `,` in a row?)".to_string())
            } else {
                Host::parse(h)
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Cluster::of)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse_with_user_and_port() {
        let h = Host::parse("node1").unwrap();
        assert_eq!((h.user, h.name.as_str(), h.port), (None, "node1", None));
        for bad in [
            "",
            "@n1",
            "n1:0",
            "n1:x",
            "n 1",
            "-oProxyCommand=x",
            "a@b@c",
            "n1;reboot",
            "$(id)",
            "`id`",
            "n1|sh",
            "me;x@n1",
            "-me@n1",
            "m e@n1",
            "n1\nx",
            "n1%h",
            "nœud",
            "::1",
            "[::1",
            "[::1]x",
            "[n1]",
            "[::1;x]",
            "n1:22:33",
        ] {
            assert!(Host::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_refusal_names_the_host_the_character_and_the_allowed_ones() {
        let e = Host::parse("me@n1;touch x").unwrap_err();
        assert!(e.contains("`me@n1;touch x`"), "{e}");
        assert!(e.contains("';'"), "{e}");
        assert!(e.contains("letters, digits"), "{e}");
        let e = Host::parse("a$b@n1").unwrap_err();
        assert!(e.contains("user name `a$b`") && e.contains("'$'"), "{e}");
    }

    #[test]
    fn ipv6_addresses_go_in_brackets_and_print_back() {
        for (text, name, port) in [
            ("[::1]", "::1", None),
            ("[::1]:2222", "::1", Some(2222)),
            ("me@[fe80::1]:22", "fe80::1", Some(22)),
            ("[::ffff:10.0.0.1]", "::ffff:10.0.0.1", None),
        ] {
            let h = Host::parse(text).unwrap();
            assert_eq!((h.name.as_str(), h.port), (name, port), "{text}");
            assert_eq!(h.to_string(), text);
        }
        assert!(Host::parse("fe80::1").unwrap_err().contains("brackets"));
    }

    #[test]
    fn plan_wide_user_and_port_fill_in() {
        let c = Cluster::hosts(["n1", "root@n2:22"]).user("me").port(2222);
        assert_eq!(c.resolved(&c.hosts[0]).to_string(), "me@n1:2222");
        assert_eq!(c.resolved(&c.hosts[1]).to_string(), "root@n2:22");
    }
}
