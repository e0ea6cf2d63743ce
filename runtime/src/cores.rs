//! How many cores, and which hosts, this process may use: what R's
//! `parallelly::availableCores()` and `availableWorkers()` answer.
//!
//! Every source is read through a lookup function, so the rules are tested
//! without touching the process environment. The answer is never below one
//! core and never an empty host list.

/// A lookup: an environment variable's value, or a file's content.
type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Number of CPU cores this process may use, never below 1.
///
/// `FUTURIZE_AVAILABLE_CORES` (a positive number) wins outright. Otherwise
/// the smallest of: the CPU affinity of the process, the cgroup CPU quota
/// (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), `SLURM_CPUS_PER_TASK`, `NSLOTS`
/// (SGE) and `PBS_NUM_PPN` (Torque/PBS), among those that are set. Values that
/// are not positive numbers are ignored.
///
/// ```
/// assert!(futurize_runtime::available_cores() >= 1);
/// ```
pub fn available_cores() -> usize {
    let affinity = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores_from(&|k| std::env::var(k).ok(), &read_file, affinity)
}

/// The hosts this process may use as workers, one entry per slot, never empty.
///
/// In order: `SLURM_JOB_NODELIST` (or `SLURM_NODELIST`, hostlist syntax such
/// as `n[01-03,7]`, each host repeated by `SLURM_TASKS_PER_NODE` or
/// `SLURM_JOB_CPUS_PER_NODE`, e.g. `2(x3),1`), the file named by
/// `PBS_NODEFILE` (one host per line and slot), the file named by
/// `PE_HOSTFILE` (SGE: `host slots ...`), else `localhost` once per core of
/// [`available_cores`].
///
/// ```
/// let workers = futurize_runtime::available_workers();
/// assert!(!workers.is_empty());
/// ```
pub fn available_workers() -> Vec<String> {
    workers_from(&|k| std::env::var(k).ok(), &read_file, available_cores())
}

/// Bytes of memory this process may use: the cgroup limit (v2 `memory.max`,
/// v1 `memory.limit_in_bytes`) when there is one below the machine's, else
/// the machine's `MemTotal`.
///
/// ```
/// assert!(futurize_runtime::cores::available_memory() > 0);
/// ```
pub fn available_memory() -> u64 {
    memory_from(&read_file)
}

fn memory_from(fs: Lookup<'_>) -> u64 {
    let total = fs("/proc/meminfo")
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(u64::MAX, |kb| kb * 1024);
    let limit = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|p| fs(p))
    .and_then(|v| v.trim().parse::<u64>().ok())
    .unwrap_or(u64::MAX);
    total.min(limit)
}

fn read_file(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn positive(text: &str) -> Option<usize> {
    text.trim().parse::<usize>().ok().filter(|&n| n > 0)
}

/// The variable whose value [`available_cores`] takes outright.
const CORES_OVERRIDE: &str = "FUTURIZE_AVAILABLE_CORES";

/// What each source of [`available_cores`] says in this process, `None`
/// where it is unset or not a positive number: the override first, then
/// the limits whose smallest is the answer (for `session_info()`).
pub(crate) fn cores_by_method() -> Vec<(&'static str, Option<usize>)> {
    let affinity = std::thread::available_parallelism().map_or(1, |n| n.get());
    methods_from(&|k| std::env::var(k).ok(), &read_file, affinity)
}

fn methods_from(
    env: Lookup<'_>,
    fs: Lookup<'_>,
    affinity: usize,
) -> Vec<(&'static str, Option<usize>)> {
    let mut methods = vec![
        (
            CORES_OVERRIDE,
            env(CORES_OVERRIDE).as_deref().and_then(positive),
        ),
        ("affinity", Some(affinity.max(1))),
        ("cgroup quota", cgroup_quota(fs)),
    ];
    for var in ["SLURM_CPUS_PER_TASK", "NSLOTS", "PBS_NUM_PPN"] {
        methods.push((var, env(var).as_deref().and_then(positive)));
    }
    methods
}

fn cores_from(env: Lookup<'_>, fs: Lookup<'_>, affinity: usize) -> usize {
    deciding_method(&methods_from(env, fs, affinity)).1
}

/// The method whose count [`available_cores`] answers, and that count: the
/// override when it is set, else the smallest limit (never below one).
pub(crate) fn deciding_method(methods: &[(&'static str, Option<usize>)]) -> (&'static str, usize) {
    let set = || methods.iter().filter_map(|&(name, n)| Some((name, n?)));
    set()
        .find(|&(name, _)| name == CORES_OVERRIDE)
        .or_else(|| {
            set()
                .filter(|&(name, _)| name != CORES_OVERRIDE)
                .min_by_key(|&(_, n)| n)
        })
        .unwrap_or(("affinity", 1))
}

/// Cores allowed by the cgroup CPU quota, if one is set.
fn cgroup_quota(fs: Lookup<'_>) -> Option<usize> {
    let ceil = |quota: f64, period: f64| {
        (quota > 0.0 && period > 0.0).then(|| ((quota / period).ceil() as usize).max(1))
    };
    // cgroup v2: the process's own group first, then the root.
    let own = fs("/proc/self/cgroup").and_then(|text| {
        text.lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(|p| format!("/sys/fs/cgroup{}/cpu.max", p.trim_end_matches('/')))
    });
    for path in own
        .into_iter()
        .chain(["/sys/fs/cgroup/cpu.max".to_string()])
    {
        if let Some(text) = fs(&path) {
            let mut parts = text.split_whitespace();
            let (quota, period) = (parts.next()?, parts.next().unwrap_or("100000"));
            if quota == "max" {
                return None;
            }
            return ceil(quota.parse().ok()?, period.parse().ok()?);
        }
    }
    // cgroup v1.
    for dir in ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"] {
        if let Some(quota) = fs(&format!("{dir}/cpu.cfs_quota_us")) {
            let quota: f64 = quota.trim().parse().ok()?;
            let period: f64 = fs(&format!("{dir}/cpu.cfs_period_us"))?
                .trim()
                .parse()
                .ok()?;
            return ceil(quota, period);
        }
    }
    None
}

fn workers_from(env: Lookup<'_>, fs: Lookup<'_>, cores: usize) -> Vec<String> {
    let slurm = env("SLURM_JOB_NODELIST").or_else(|| env("SLURM_NODELIST"));
    if let Some(hosts) = slurm.as_deref().and_then(|l| parse_hostlist(l).ok()) {
        let counts = env("SLURM_TASKS_PER_NODE")
            .or_else(|| env("SLURM_JOB_CPUS_PER_NODE"))
            .and_then(|c| parse_counts(&c));
        return match counts {
            Some(counts) if counts.len() == hosts.len() => hosts
                .into_iter()
                .zip(counts)
                .flat_map(|(h, n)| std::iter::repeat_n(h, n))
                .collect(),
            _ => hosts,
        };
    }
    if let Some(text) = env("PBS_NODEFILE").and_then(|p| fs(&p)) {
        let hosts: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        if !hosts.is_empty() {
            return hosts;
        }
    }
    if let Some(text) = env("PE_HOSTFILE").and_then(|p| fs(&p)) {
        let hosts: Vec<String> = text
            .lines()
            .filter_map(|l| {
                let mut fields = l.split_whitespace();
                Some((fields.next()?.to_string(), positive(fields.next()?)?))
            })
            .flat_map(|(h, n)| std::iter::repeat_n(h, n))
            .collect();
        if !hosts.is_empty() {
            return hosts;
        }
    }
    vec!["localhost".to_string(); cores.max(1)]
}

/// Expands a Slurm hostlist: `n1,n2`, `n[01-03,7]` (zero padding kept),
/// several bracket groups (`r[1-2]-n[1-2]`, every combination).
///
/// ```
/// use futurize_runtime::cores::parse_hostlist;
/// assert_eq!(parse_hostlist("n[01-03,7],gpu").unwrap(), ["n01", "n02", "n03", "n7", "gpu"]);
/// ```
///
/// # Errors
/// A description of the problem when the text is not a hostlist.
pub fn parse_hostlist(text: &str) -> Result<Vec<String>, String> {
    let mut hosts = Vec::new();
    for item in split_top_level(text.trim())? {
        if item.is_empty() {
            return Err(format!("an empty host name in `{text}`"));
        }
        hosts.extend(expand_item(&item)?);
    }
    if hosts.is_empty() {
        return Err("an empty hostlist".into());
    }
    Ok(hosts)
}

/// Splits on commas outside brackets.
fn split_top_level(text: &str) -> Result<Vec<String>, String> {
    let (mut items, mut current, mut depth) = (Vec::new(), String::new(), 0);
    for c in text.chars() {
        match c {
            '[' => depth += 1,
            ']' if depth == 0 => return Err(format!("an unmatched `]` in `{text}`")),
            ']' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if depth != 0 {
        return Err(format!("an unclosed `[` in `{text}`"));
    }
    items.push(current);
    Ok(items)
}

/// Expands one item with zero or more bracket groups.
fn expand_item(item: &str) -> Result<Vec<String>, String> {
    let Some(open) = item.find('[') else {
        return Ok(vec![item.to_string()]);
    };
    let close = open + item[open..].find(']').ok_or("an unclosed `[`")?;
    let (prefix, ranges, rest) = (&item[..open], &item[open + 1..close], &item[close + 1..]);
    let tails = expand_item(rest)?;
    let mut out = Vec::new();
    for part in ranges.split(',') {
        let numbers: Vec<String> = match part.split_once('-') {
            Some((a, b)) => {
                let (lo, hi): (u64, u64) = (
                    a.parse().map_err(|_| format!("`{a}` is not a number"))?,
                    b.parse().map_err(|_| format!("`{b}` is not a number"))?,
                );
                if lo > hi || hi - lo > 100_000 {
                    return Err(format!("the range `{part}` is not usable"));
                }
                (lo..=hi)
                    .map(|n| format!("{n:0width$}", width = a.len()))
                    .collect()
            }
            None if !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()) => {
                vec![part.to_string()]
            }
            None => return Err(format!("`{part}` is not a number or a range")),
        };
        for n in numbers {
            for tail in &tails {
                out.push(format!("{prefix}{n}{tail}"));
            }
        }
    }
    Ok(out)
}

/// Parses Slurm's per-node counts: `2(x3),1` is 2, 2, 2, 1.
fn parse_counts(text: &str) -> Option<Vec<usize>> {
    let mut counts = Vec::new();
    for part in text.split(',') {
        match part.split_once("(x") {
            Some((n, times)) => {
                let n = positive(n)?;
                let times = positive(times.strip_suffix(')')?)?;
                counts.extend(std::iter::repeat_n(n, times));
            }
            None => counts.push(positive(part)?),
        }
    }
    Some(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_the_smaller_of_the_machine_and_its_cgroup() {
        let files = |limit: &'static str| {
            move |p: &str| match p {
                "/proc/meminfo" => Some("MemTotal:       24000000 kB\nMemFree: 1 kB\n".into()),
                "/sys/fs/cgroup/memory.max" => Some(limit.into()),
                _ => None,
            }
        };
        assert_eq!(memory_from(&files("max\n")), 24_000_000 * 1024);
        assert_eq!(memory_from(&files("1073741824\n")), 1 << 30);
    }
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn cores(env: &[(&str, &str)], fs: &[(&str, &str)], affinity: usize) -> usize {
        cores_from(&lookup(env), &lookup(fs), affinity)
    }

    #[test]
    fn affinity_alone() {
        assert_eq!(cores(&[], &[], 8), 8);
        assert_eq!(cores(&[], &[], 0), 1, "never below one");
    }

    #[test]
    fn each_scheduler_variable_limits_cores() {
        for var in ["SLURM_CPUS_PER_TASK", "NSLOTS", "PBS_NUM_PPN"] {
            assert_eq!(cores(&[(var, "3")], &[], 8), 3, "{var}");
            assert_eq!(cores(&[(var, "30")], &[], 8), 8, "{var}: the minimum wins");
        }
    }

    #[test]
    fn invalid_values_are_ignored() {
        for bad in ["0", "-2", "two", ""] {
            assert_eq!(cores(&[("SLURM_CPUS_PER_TASK", bad)], &[], 4), 4, "{bad:?}");
            assert_eq!(
                cores(&[("FUTURIZE_AVAILABLE_CORES", bad)], &[], 4),
                4,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_user_override_wins_outright() {
        let env = [("FUTURIZE_AVAILABLE_CORES", "16"), ("NSLOTS", "2")];
        assert_eq!(cores(&env, &[], 4), 16);
    }

    #[test]
    fn every_method_is_reported_and_the_deciding_one_named() {
        let env = lookup(&[("NSLOTS", "3"), ("PBS_NUM_PPN", "x")]);
        let methods = methods_from(&env, &lookup(&[]), 8);
        let names: Vec<&str> = methods.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            [
                "FUTURIZE_AVAILABLE_CORES",
                "affinity",
                "cgroup quota",
                "SLURM_CPUS_PER_TASK",
                "NSLOTS",
                "PBS_NUM_PPN"
            ]
        );
        assert_eq!(methods[4], ("NSLOTS", Some(3)));
        assert_eq!(methods[5], ("PBS_NUM_PPN", None), "not a number: unset");
        assert_eq!(deciding_method(&methods), ("NSLOTS", 3));
        let env = lookup(&[("NSLOTS", "3"), ("FUTURIZE_AVAILABLE_CORES", "16")]);
        let methods = methods_from(&env, &lookup(&[]), 8);
        assert_eq!(deciding_method(&methods), ("FUTURIZE_AVAILABLE_CORES", 16));
    }

    #[test]
    fn cgroup_v2_quota_of_the_process_group_or_the_root() {
        let fs = [
            ("/proc/self/cgroup", "0::/user.slice/job\n"),
            ("/sys/fs/cgroup/user.slice/job/cpu.max", "150000 100000\n"),
        ];
        assert_eq!(cores(&[], &fs, 8), 2, "1.5 cores round up to 2");
        assert_eq!(
            cores(&[], &[("/sys/fs/cgroup/cpu.max", "max 100000")], 8),
            8
        );
        assert_eq!(
            cores(&[], &[("/sys/fs/cgroup/cpu.max", "300000 100000")], 8),
            3
        );
    }

    #[test]
    fn cgroup_v1_quota() {
        let fs = [
            ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "200000"),
            ("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000"),
        ];
        assert_eq!(cores(&[], &fs, 8), 2);
        let unlimited = [
            ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1"),
            ("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000"),
        ];
        assert_eq!(cores(&[], &unlimited, 8), 8);
    }

    fn workers(env: &[(&str, &str)], fs: &[(&str, &str)]) -> Vec<String> {
        workers_from(&lookup(env), &lookup(fs), 2)
    }

    #[test]
    fn hostlists_with_ranges_padding_and_groups() {
        assert_eq!(parse_hostlist("n1,n2").unwrap(), ["n1", "n2"]);
        assert_eq!(
            parse_hostlist("n[01-03,7]").unwrap(),
            ["n01", "n02", "n03", "n7"]
        );
        assert_eq!(
            parse_hostlist("r[1-2]-n[1-2]").unwrap(),
            ["r1-n1", "r1-n2", "r2-n1", "r2-n2"]
        );
        assert_eq!(parse_hostlist("a[1-2]b,c").unwrap(), ["a1b", "a2b", "c"]);
        for bad in ["n[1-", "n]", "n[a-b]", "n[3-1]", "", "n1,,n2"] {
            assert!(parse_hostlist(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn slurm_nodes_repeated_by_tasks_per_node() {
        let env = [
            ("SLURM_JOB_NODELIST", "n[1-3]"),
            ("SLURM_TASKS_PER_NODE", "2(x2),1"),
        ];
        assert_eq!(workers(&env, &[]), ["n1", "n1", "n2", "n2", "n3"]);
        let env = [
            ("SLURM_NODELIST", "n[1-2]"),
            ("SLURM_JOB_CPUS_PER_NODE", "3,1"),
        ];
        assert_eq!(workers(&env, &[]), ["n1", "n1", "n1", "n2"]);
        assert_eq!(
            workers(&[("SLURM_JOB_NODELIST", "n[1-2]")], &[]),
            ["n1", "n2"]
        );
    }

    #[test]
    fn a_malformed_hostlist_falls_back_to_the_next_source() {
        let env = [("SLURM_JOB_NODELIST", "n[1-"), ("PBS_NODEFILE", "/nodes")];
        assert_eq!(workers(&env, &[("/nodes", "a\nb\n")]), ["a", "b"]);
    }

    #[test]
    fn pbs_nodefile_and_sge_hostfile() {
        let fs = [
            ("/pbs", "n1\nn1\nn2\n"),
            ("/sge", "h1 2 all.q UNDEFINED\nh2 1 all.q UNDEFINED\n"),
        ];
        assert_eq!(
            workers(&[("PBS_NODEFILE", "/pbs")], &fs),
            ["n1", "n1", "n2"]
        );
        assert_eq!(workers(&[("PE_HOSTFILE", "/sge")], &fs), ["h1", "h1", "h2"]);
    }

    #[test]
    fn localhost_once_per_core_otherwise() {
        assert_eq!(workers(&[], &[]), ["localhost", "localhost"]);
    }

    #[test]
    fn this_machine_answers() {
        assert!(available_cores() >= 1);
        assert!(!available_workers().is_empty());
    }
}
