//! The parser of a plan's text form: one level (`multiprocess:2`,
//! alternatives `multiprocess:2|slurm`) at a time, each checked against the
//! worker limits, a level that does not parse said with its nearest valid
//! form ([`suggest`](super::suggest)).

use super::{Level, MAX_SLURM_JOBS, MAX_WORKERS, Slurm, cluster, suggest};

/// The most allocations a worker pool on Slurm may hold.
pub(crate) const MAX_POOL_ALLOCATIONS: usize = 1000;

/// Why `level` asks for more workers than a plan may have, if it does.
pub(super) fn check_level(level: &Level) -> Result<(), String> {
    let (asked, most, what) = match level {
        Level::FirstFit(levels) => return levels.iter().try_for_each(check_level),
        Level::Slurm(s) => (s.max_jobs(), MAX_SLURM_JOBS, "jobs in flight"),
        Level::SlurmPool(p) => (p.max_allocations(), MAX_POOL_ALLOCATIONS, "allocations"),
        Level::Cluster(c) => (c.hosts.len(), MAX_WORKERS, "workers (hosts listed)"),
        other => (other.workers(), MAX_WORKERS, "workers"),
    };
    if asked > most {
        return Err(format!(
            "`{level}` asks for {asked} {what}: a level has at most {most}"
        ));
    }
    Ok(())
}

/// Why a pool of Slurm allocations over `levels` (itself and the nested
/// multiprocess level it takes in) would run more workers than a plan may
/// have, if it would.
pub(super) fn check_pool(levels: &[Level]) -> Result<(), String> {
    let (
        Some(Level::SlurmPool(pool)),
        Some(Level::Multiprocess {
            workers,
            fresh: false,
        }),
    ) = (levels.first(), levels.get(1))
    else {
        return Ok(());
    };
    let total = pool.max_allocations().saturating_mul(*workers);
    if total > MAX_WORKERS {
        return Err(format!(
            "{} allocations of {workers} workers are {total} workers: a pool has at most \
             {MAX_WORKERS}",
            pool.max_allocations()
        ));
    }
    Ok(())
}

pub(super) fn level(part: &str) -> Result<Level, String> {
    let level = if part.contains('|') {
        let alternatives = part
            .split('|')
            .map(|a| match a.trim() {
                "" => Err(format!(
                    "an alternative of `{part}` is empty (a `|` with nothing on one side?)"
                )),
                a => parse_one_level(a),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Level::FirstFit(alternatives)
    } else {
        parse_one_level(part)?
    };
    check_level(&level)?;
    Ok(level)
}

fn parse_one_level(part: &str) -> Result<Level, String> {
    let (kind, arg) = match part.split_once(':') {
        Some((k, a)) => (k.trim(), Some(a.trim())),
        None => (part, None),
    };
    match kind.to_ascii_lowercase().as_str() {
        "sequential" => match arg {
            None => Ok(Level::Sequential),
            Some(a) => Err(format!("`sequential` takes no argument, found `{a}`")),
        },
        "multithread" => {
            let workers = match arg {
                None => crate::cores::available_cores(),
                Some(a) => parse_workers(a, MAX_WORKERS)?,
            };
            Ok(Level::Multithread { workers })
        }
        "multiprocess" => {
            let (count, flag) = match arg.map(|a| a.split_once(':')) {
                None => (None, None),
                Some(None) => (arg, None),
                Some(Some((n, f))) => (Some(n.trim()), Some(f.trim())),
            };
            let workers = match count {
                None => crate::cores::available_cores(),
                Some(n) => parse_workers(n, MAX_WORKERS)?,
            };
            let fresh = match flag {
                None => false,
                Some("fresh") => true,
                Some(other) => {
                    return Err(format!(
                        "`{other}` is not a multiprocess option (the one option is `fresh`)"
                    ));
                }
            };
            Ok(Level::Multiprocess { workers, fresh })
        }
        "cluster" => cluster::parse_hosts(arg).map(Level::Cluster),
        "slurm" => match arg {
            None => Ok(Level::Slurm(Slurm::jobs())),
            Some(n) => {
                parse_workers(n, MAX_SLURM_JOBS).map(|n| Level::Slurm(Slurm::jobs().workers(n)))
            }
        },
        "slurm-pool" => match arg {
            None => Ok(Level::SlurmPool(Slurm::pool())),
            Some(n) => parse_workers(n, MAX_POOL_ALLOCATIONS)
                .map(|n| Level::SlurmPool(Slurm::pool().allocations(n))),
        },
        "" => Err("a level is empty (two `/` in a row?)".into()),
        other => Err(format!(
            "`{other}` is not a known plan{}",
            suggest::hint(part)
        )),
    }
}

/// A count of workers (jobs for Slurm) from 1 to `most`.
fn parse_workers(arg: &str, most: usize) -> Result<usize, String> {
    let whole = !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_digit());
    match arg.parse::<usize>() {
        Ok(0) => Err("the number of workers must be at least 1".into()),
        Ok(n) if n <= most => Ok(n),
        _ if whole => Err(format!(
            "{arg} workers are too many: a level has at most {most}"
        )),
        _ => Err(format!(
            "`{arg}` is not a number of workers (a whole number >= 1)"
        )),
    }
}
