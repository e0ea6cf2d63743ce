//! The two knobs of the adaptive test Slurm (`scripts/test-slurm.sh
//! start-adapt`), shown with plain `sbatch`: a job over its `--mem` is
//! killed and says so in its log, and a job of partition `high` preempts a
//! job of `debug`, which is requeued under its id and runs again. The
//! futurize cases that react to memory kills and preemption rest on these
//! facts; when one of them fails, look here first.

mod common;

use common::slurm::{self, Slurm};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cases share one node: a preempting job of one case could otherwise
/// requeue the other case's jobs.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A Slurm client command aimed at `slurm`.
fn client(slurm: &Slurm, program: &str) -> Command {
    let mut c = Command::new(program);
    c.env("SLURM_CONF", &slurm.conf);
    c
}

/// Runs `c`, which must succeed; its standard output.
fn run(c: &mut Command) -> String {
    let out = c.output().expect("the Slurm client runs");
    assert!(
        out.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The jobs a case submitted, cancelled when the case ends (on a panic too),
/// so none outlives it.
struct Jobs<'a> {
    slurm: &'a Slurm,
    ids: Vec<String>,
}

impl<'a> Jobs<'a> {
    fn on(slurm: &'a Slurm) -> Self {
        Jobs {
            slurm,
            ids: Vec::new(),
        }
    }

    /// `sbatch --parsable ARGS`: the new job's id.
    fn submit(&mut self, args: &[&str]) -> String {
        let id = run(client(self.slurm, "sbatch").arg("--parsable").args(args))
            .trim()
            .to_string();
        self.ids.push(id.clone());
        id
    }
}

impl Drop for Jobs<'_> {
    fn drop(&mut self) {
        let _ = client(self.slurm, "scancel").args(&self.ids).output();
    }
}

/// The lines of job `id` in jobcomp.txt, one per time the job ended.
fn records(slurm: &Slurm, id: &str) -> Vec<String> {
    let text = std::fs::read_to_string(slurm.dir.join("log/jobcomp.txt")).unwrap_or_default();
    let prefix = format!("JobId={id} ");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

/// Whether job `id` has ended (at least once) in `state`.
fn ended(slurm: &Slurm, id: &str, state: &str) -> bool {
    let field = format!(" JobState={state} ");
    records(slurm, id).iter().any(|r| r.contains(&field))
}

/// A field of `scontrol show job ID`: `JobState`, `Reason`, `Restarts`, …
fn job_field(slurm: &Slurm, id: &str, field: &str) -> String {
    let text = run(client(slurm, "scontrol").args(["show", "job", id]));
    let key = format!("{field}=");
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(key.as_str()))
        .unwrap_or("")
        .to_string()
}

/// Polls `done` every 200 ms; fails the case saying `what` after `within`.
fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "waited {within:?} for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An empty directory of this case's own for its jobs' logs.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "futurize-slurm-knobs-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

#[test]
fn a_job_over_its_mem_ends_failed_and_its_log_says_so() {
    let Some(s) = slurm::adaptive() else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scratch("mem");
    let (over_log, under_log) = (dir.join("over.out"), dir.join("under.out"));
    let mut jobs = Jobs::on(s);
    // perl (perl-base is essential on Debian) writes every byte of its
    // string, so the memory is resident; unkilled, the job would complete.
    let over = jobs.submit(&[
        "--mem=50M",
        "-o",
        path(&over_log),
        "--wrap",
        r#"perl -e '$x = "a" x (400 * 1024 * 1024); sleep 20'"#,
    ]);
    let under = jobs.submit(&[
        "--mem=100M",
        "-o",
        path(&under_log),
        "--wrap",
        r#"perl -e '$x = "a" x (10 * 1024 * 1024); sleep 3'"#,
    ]);
    wait_for("both jobs to end", Duration::from_secs(40), || {
        !records(s, &over).is_empty() && !records(s, &under).is_empty()
    });

    let record = &records(s, &over)[0];
    assert!(
        record.contains(" JobState=FAILED ") && record.contains(" ExitCode=0:9 "),
        "a job over its --mem: {record}"
    );
    let log = std::fs::read_to_string(&over_log).unwrap_or_default();
    assert!(log.contains("Exceeded job memory limit"), "its log: {log}");

    // The same program within its --mem is left alone.
    let record = &records(s, &under)[0];
    assert!(
        record.contains(" JobState=COMPLETED ") && record.contains(" ExitCode=0:0 "),
        "a job within its --mem: {record}"
    );
    let log = std::fs::read_to_string(&under_log).unwrap_or_default();
    assert!(!log.contains("Exceeded"), "its log: {log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_high_job_preempts_a_debug_job_which_is_requeued_and_runs_again() {
    let Some(s) = slurm::adaptive() else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scratch("preempt");
    let runs = dir.join("runs");
    let cpus = run(client(s, "sinfo").args(["-h", "-p", "debug", "-o", "%c"]));
    let mut jobs = Jobs::on(s);
    // Every run notes its restart count; the first waits to be preempted,
    // the run after the requeue ends at once.
    let script = format!(
        "n=${{SLURM_RESTART_COUNT:-0}}; echo $n >> {runs}; [ $n -gt 0 ] || sleep 60",
        runs = path(&runs)
    );
    let low_log = dir.join("low.out");
    let low = jobs.submit(&[
        "-p",
        "debug",
        "-c",
        cpus.trim(),
        "-o",
        path(&low_log),
        "--wrap",
        &script,
    ]);
    wait_for("the debug job to run", Duration::from_secs(30), || {
        job_field(s, &low, "JobState") == "RUNNING"
    });

    let high_log = dir.join("high.out");
    let high = jobs.submit(&["-p", "high", "-o", path(&high_log), "--wrap", "true"]);
    wait_for(
        "the debug job to be preempted",
        Duration::from_secs(30),
        || ended(s, &low, "PREEMPTED"),
    );
    // Requeued under the same id, and held back by Slurm's requeue delay.
    wait_for(
        "the debug job to wait for its BeginTime",
        Duration::from_secs(10),
        || {
            job_field(s, &low, "JobState") == "PENDING"
                && job_field(s, &low, "Reason") == "BeginTime"
        },
    );
    assert_eq!(job_field(s, &low, "Restarts"), "1");

    run(client(s, "scontrol").args(["update", &format!("JobId={low}"), "StartTime=now"]));
    wait_for(
        "the requeued job to complete",
        Duration::from_secs(30),
        || ended(s, &low, "COMPLETED"),
    );
    wait_for("the high job to complete", Duration::from_secs(30), || {
        ended(s, &high, "COMPLETED")
    });
    assert_eq!(records(s, &low).len(), 2, "{:#?}", records(s, &low));
    let runs = std::fs::read_to_string(&runs).unwrap_or_default();
    assert_eq!(runs, "0\n1\n", "the restart counts of the debug job's runs");
    let _ = std::fs::remove_dir_all(&dir);
}
