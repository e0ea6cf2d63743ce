//! A site's defaults for jobs that adapt: the caps on escalated retries and
//! the time signal's margin, from the plan ([`Slurm::most_memory`],
//! [`Slurm::longest_time`], [`Slurm::time_signal`]) or from the job
//! template's `#FUTURIZE name=value` lines; the plan wins.

use crate::Error;
use crate::plan::Slurm;

/// How long before its time limit a job is told to hand back the rest of
/// its chunk (Slurm may tell it up to a minute earlier).
pub(super) const TIME_SIGNAL_MARGIN: std::time::Duration = std::time::Duration::from_secs(60);

/// The site's limits, read from the plan and the template (the plan wins).
pub(super) struct Limits {
    pub(super) most_memory: Option<u64>,
    pub(super) longest_time: Option<std::time::Duration>,
    pub(super) time_signal: std::time::Duration,
}

impl Limits {
    /// The plan's limits over the template's `#FUTURIZE name=value` lines;
    /// a value that does not read is an error naming where it is.
    pub(super) fn read(spec: &Slurm, template: Option<&str>) -> Result<Limits, Error> {
        let from_template = |name: &str| {
            template?.lines().find_map(|l| {
                let rest = l.trim().strip_prefix("#FUTURIZE")?.trim();
                let (n, v) = rest.split_once('=')?;
                (n.trim() == name).then(|| v.trim().to_string())
            })
        };
        let pick = |own: &Option<String>, name: &str| {
            own.clone()
                .map(|v| (v, format!("Slurm::{}", name.replace('-', "_"))))
                .or_else(|| {
                    from_template(name).map(|v| (v, format!("the template's #FUTURIZE {name}")))
                })
        };
        let bad = |what: String, why: String| Error::Resources { asked: what, why };
        let most_memory = match pick(&spec.site.most_memory, "most-memory") {
            Some((v, at)) => Some(
                futurize_units::parse_memory(&v)
                    .map_err(|e| bad(format!("{at} = {v}"), e.to_string()))?,
            ),
            None => None,
        };
        let duration = |name: &str, own: &Option<String>| match pick(own, name) {
            Some((v, at)) => crate::plan::parse_duration(&v)
                .map(Some)
                .map_err(|e| bad(format!("{at} = {v}"), e)),
            None => Ok(None),
        };
        Ok(Limits {
            most_memory,
            longest_time: duration("longest-time", &spec.site.longest_time)?,
            time_signal: duration("time-signal", &spec.site.time_signal)?
                .unwrap_or(TIME_SIGNAL_MARGIN),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_limits_come_from_the_plan_over_the_template() {
        let template =
            "#!/bin/sh\n#FUTURIZE most-memory=64G\n#FUTURIZE time-signal=2m\n{{command}}\n";
        let l = Limits::read(&Slurm::jobs(), Some(template)).unwrap();
        assert_eq!(l.most_memory, Some(64 << 30));
        assert_eq!(l.longest_time, None);
        assert_eq!(l.time_signal, std::time::Duration::from_secs(120));
        let plan = Slurm::jobs().most_memory("8G").longest_time("1h");
        let l = Limits::read(&plan, Some(template)).unwrap();
        assert_eq!(l.most_memory, Some(8 << 30), "the plan wins");
        assert_eq!(l.longest_time, Some(std::time::Duration::from_secs(3600)));
        let l = Limits::read(&Slurm::jobs(), None).unwrap();
        assert_eq!(l.time_signal, TIME_SIGNAL_MARGIN);
        let e = Limits::read(&Slurm::jobs(), Some("#FUTURIZE longest-time=soon\n"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("the template's #FUTURIZE longest-time = soon"),
            "{e}"
        );
        let e = Limits::read(&Slurm::jobs().most_memory("lots"), None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("Slurm::most_memory = lots"), "{e}");
    }
}
