//! What a future or a `foreach!` call needs to run: cores, memory, time,
//! GPUs, a partition, and free-form scheduler options, as R's batchtools
//! `resources` carry them.
//!
//! `resources = (...)` on `future!`, `foreach!` and `#[futurize]` builds a
//! [`Resources`] (checked at compile time where the values are literals); a
//! plan's backends give defaults. The Slurm backend turns them into `sbatch`
//! options; every backend compares them with what it [offers](Capacity), so
//! a request no backend can meet is an instant error naming the request and
//! each offer.

use std::fmt;
use std::time::Duration;

/// What a future or a call needs. Unset fields take the plan's defaults.
///
/// ```
/// use futurize_runtime::plan::Resources;
/// let r = Resources::new().cpus(4).mem("2G").time("1h30m").partition("short");
/// assert_eq!(r.check(), Ok(()));
/// assert_eq!(r.mem_bytes(), Some(2 << 30));
/// assert!(Resources::new().mem("lots").check().is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Resources {
    /// Cores per task (`cpus`; batchtools' `ncpus`, `cpus_per_task`).
    pub cpus: Option<u32>,
    /// Memory per node, as Slurm writes it: `"500M"`, `"2G"`, `"1T"`
    /// (`mem`; batchtools' `memory`).
    pub mem: Option<String>,
    /// Wall time, as `timeout` takes it: `"90s"`, `"5m"`, `"1h30m"`, `"2d"`
    /// (`time`; batchtools' `walltime`).
    pub time: Option<String>,
    /// The Slurm partition.
    pub partition: Option<String>,
    /// GPUs per job.
    pub gpus: Option<u32>,
    /// Nodes per job.
    pub nodes: Option<u32>,
    /// Tasks per job.
    pub ntasks: Option<u32>,
    /// More `sbatch` options, as written: `["--qos=low", "--account=lab"]`.
    pub sbatch: Vec<String>,
}

impl Resources {
    /// Nothing asked for.
    pub fn new() -> Resources {
        Resources::default()
    }

    /// Cores per task.
    pub fn cpus(mut self, n: u32) -> Resources {
        self.cpus = Some(n);
        self
    }

    /// Memory: `"2G"`.
    pub fn mem(mut self, text: impl Into<String>) -> Resources {
        self.mem = Some(text.into());
        self
    }

    /// Wall time: `"1h30m"`.
    pub fn time(mut self, text: impl Into<String>) -> Resources {
        self.time = Some(text.into());
        self
    }

    /// The partition.
    pub fn partition(mut self, name: impl Into<String>) -> Resources {
        self.partition = Some(name.into());
        self
    }

    /// GPUs.
    pub fn gpus(mut self, n: u32) -> Resources {
        self.gpus = Some(n);
        self
    }

    /// Nodes.
    pub fn nodes(mut self, n: u32) -> Resources {
        self.nodes = Some(n);
        self
    }

    /// Tasks.
    pub fn ntasks(mut self, n: u32) -> Resources {
        self.ntasks = Some(n);
        self
    }

    /// One more `sbatch` option.
    pub fn sbatch(mut self, option: impl Into<String>) -> Resources {
        self.sbatch.push(option.into());
        self
    }

    /// `self` with what it leaves unset taken from `defaults`.
    pub fn or(&self, defaults: &Resources) -> Resources {
        Resources {
            cpus: self.cpus.or(defaults.cpus),
            mem: self.mem.clone().or_else(|| defaults.mem.clone()),
            time: self.time.clone().or_else(|| defaults.time.clone()),
            partition: self
                .partition
                .clone()
                .or_else(|| defaults.partition.clone()),
            gpus: self.gpus.or(defaults.gpus),
            nodes: self.nodes.or(defaults.nodes),
            ntasks: self.ntasks.or(defaults.ntasks),
            sbatch: defaults
                .sbatch
                .iter()
                .chain(&self.sbatch)
                .cloned()
                .collect(),
        }
    }

    /// True when nothing is asked for.
    pub fn is_empty(&self) -> bool {
        *self == Resources::default()
    }

    /// Why the request cannot be understood, naming the field, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        for (name, value) in [
            ("cpus", self.cpus),
            ("nodes", self.nodes),
            ("ntasks", self.ntasks),
        ] {
            if value == Some(0) {
                return Err(format!(
                    "resources: `{name} = 0` asks for nothing; give at least 1"
                ));
            }
        }
        if let Some(mem) = &self.mem {
            parse_memory(mem).map_err(|e| format!("resources: `mem = \"{mem}\"`: {e}"))?;
        }
        if let Some(time) = &self.time {
            parse_duration(time).map_err(|e| format!("resources: `time = \"{time}\"`: {e}"))?;
        }
        if let Some(p) = &self.partition
            && (p.is_empty() || p.contains(char::is_whitespace))
        {
            return Err(format!(
                "resources: `partition = \"{p}\"` is not a partition name"
            ));
        }
        for option in &self.sbatch {
            if !option.starts_with('-') {
                return Err(format!(
                    "resources: the sbatch option `{option}` does not start with `-` \
                     (write it as on the command line: \"--qos=low\")"
                ));
            }
        }
        Ok(())
    }

    /// The memory asked for, in bytes.
    pub fn mem_bytes(&self) -> Option<u64> {
        self.mem.as_deref().and_then(|m| parse_memory(m).ok())
    }

    /// The wall time asked for.
    pub fn wall_time(&self) -> Option<Duration> {
        self.time.as_deref().and_then(|t| parse_duration(t).ok())
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(c) = self.cpus {
            parts.push(format!("cpus = {c}"));
        }
        if let Some(m) = &self.mem {
            parts.push(format!("mem = \"{m}\""));
        }
        if let Some(t) = &self.time {
            parts.push(format!("time = \"{t}\""));
        }
        if let Some(p) = &self.partition {
            parts.push(format!("partition = \"{p}\""));
        }
        if let Some(g) = self.gpus {
            parts.push(format!("gpus = {g}"));
        }
        if let Some(n) = self.nodes {
            parts.push(format!("nodes = {n}"));
        }
        if let Some(n) = self.ntasks {
            parts.push(format!("ntasks = {n}"));
        }
        if !self.sbatch.is_empty() {
            parts.push(format!("sbatch = {:?}", self.sbatch));
        }
        write!(f, "({})", parts.join(", "))
    }
}

/// `"500M"`, `"2G"`, `"1.5T"`, `"800K"`, or a plain number of megabytes (as
/// Slurm reads `--mem`), in bytes: the text as `resources = (mem = ...)`
/// takes it, read by [`futurize_units::parse_memory`].
pub fn parse_memory(text: &str) -> Result<u64, String> {
    futurize_units::parse_memory(text).map_err(|e| e.to_string())
}

/// `"90s"`, `"5m"`, `"1h30m"`, `"2d"`, `"1.5h"`, `"2 min 5 s"`: what
/// `timeout` takes (units `ms`, `s`/`sec`/`secs`, `m`/`min`/`mins`,
/// `h`/`hr`/`hrs`, `d`/`day`/`days`; spaces allowed between terms; at least
/// 1 ms), read by [`futurize_units::parse_duration`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    futurize_units::parse_duration(text).map_err(|e| e.to_string())
}

/// What a backend can give one future or call: the largest request it can
/// meet (`None`: no limit it knows of).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capacity {
    /// What offers it: `multiprocess:2 on this machine`, `slurm (largest node n1)`.
    pub name: String,
    /// Cores.
    pub cpus: Option<u32>,
    /// Memory in bytes.
    pub mem: Option<u64>,
    /// Wall time.
    pub time: Option<Duration>,
    /// GPUs.
    pub gpus: Option<u32>,
    /// Nodes.
    pub nodes: Option<u32>,
    /// Whether it understands Slurm's own requests (partition, sbatch
    /// options, several tasks).
    pub slurm: bool,
}

impl Capacity {
    /// Why `r` does not fit here, if it does not.
    pub fn refuses(&self, r: &Resources) -> Option<String> {
        let over = |what: &str, asked: String, offered: String| {
            Some(format!(
                "{what} {asked} is more than {} offers ({offered})",
                self.name
            ))
        };
        if let (Some(a), Some(o)) = (r.cpus, self.cpus)
            && a > o
        {
            return over("cpus =", a.to_string(), format!("{o} cores"));
        }
        if let (Some(a), Some(o)) = (r.mem_bytes(), self.mem)
            && a > o
        {
            return over(
                "mem =",
                format!("\"{}\"", r.mem.as_deref().unwrap_or_default()),
                format!("{} of memory", human_bytes(o)),
            );
        }
        if let (Some(a), Some(o)) = (r.wall_time(), self.time)
            && a > o
        {
            return over(
                "time =",
                format!("\"{}\"", r.time.as_deref().unwrap_or_default()),
                format!("at most {o:?}"),
            );
        }
        if let Some(a) = r.gpus.filter(|&g| g > 0)
            && a > self.gpus.unwrap_or(u32::MAX)
        {
            return over(
                "gpus =",
                a.to_string(),
                format!("{} GPUs", self.gpus.unwrap_or(0)),
            );
        }
        if let (Some(a), Some(o)) = (r.nodes, self.nodes)
            && a > o
        {
            return over("nodes =", a.to_string(), format!("{o} nodes"));
        }
        if !self.slurm && (r.partition.is_some() || !r.sbatch.is_empty()) {
            return Some(format!(
                "{} has no Slurm partitions or sbatch options to give",
                self.name
            ));
        }
        None
    }
}

/// `23 GiB`, `512 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value >= 10.0 || unit == 0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_over_an_offer_names_both() {
        let here = Capacity {
            name: "multiprocess:2 on this machine".into(),
            cpus: Some(2),
            mem: Some(23 << 30),
            ..Capacity::default()
        };
        let why = here.refuses(&Resources::new().mem("100T")).unwrap();
        assert!(why.contains("mem = \"100T\""), "{why}");
        assert!(why.contains("23 GiB"), "{why}");
        assert_eq!(here.refuses(&Resources::new().mem("1G").cpus(2)), None);
        assert!(here.refuses(&Resources::new().partition("gpu")).is_some());
    }

    #[test]
    fn defaults_fill_what_is_unset() {
        let d = Resources::new()
            .time("1h")
            .partition("short")
            .sbatch("--qos=low");
        let r = Resources::new().time("5m").or(&d);
        assert_eq!(r.time.as_deref(), Some("5m"));
        assert_eq!(r.partition.as_deref(), Some("short"));
        assert_eq!(r.sbatch, vec!["--qos=low"]);
    }
}
