//! Inside a Slurm allocation (`salloc -N3 -n3` on the project's fake
//! three-node Slurm), a cluster plan starts one worker per task over srun.

mod common;

use common::slurm;
use futurize::prelude::*;
use std::process::Command;

#[test]
fn inside_an_allocation_cluster_runs_one_worker_per_task_over_srun() {
    let Some(s) = slurm::three_nodes() else {
        return;
    };
    let out = Command::new("salloc")
        .args(["--nodes=3", "--ntasks=3", "--quiet", "--time=5"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "child_scenario",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SLURM_CONF", &s.conf)
        .env("FUTURIZE_PLAN", "cluster")
        .env("FUTURIZE_TEST_SCENARIO", "srun")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let start = stdout.find("BEGIN\n").expect("BEGIN") + "BEGIN\n".len();
    let end = stdout.find("END\n").expect("END");
    let report = &stdout[start..end];
    assert_eq!(
        report, "workers 3\nnodes [\"n1\", \"n2\", \"n3\"]\nin steps true\n",
        "{stderr}"
    );
}

/// The child side of the scenarios (does nothing in a normal run).
#[test]
fn child_scenario() {
    let Ok(scenario) = std::env::var("FUTURIZE_TEST_SCENARIO") else {
        return;
    };
    println!("BEGIN");
    match scenario.as_str() {
        "srun" => {
            println!("workers {}", nbr_of_workers().unwrap());
            let seen: Vec<(String, bool)> = foreach!(_i in 0..12u32 => {
                std::thread::sleep(std::time::Duration::from_millis(50));
                (
                    std::env::var("SLURMD_NODENAME").unwrap_or_default(),
                    std::env::var_os("SLURM_STEP_ID").is_some(),
                )
            } %dofuture% chunk_size = 1)
            .unwrap();
            let mut nodes: Vec<String> = seen.iter().map(|(n, _)| n.clone()).collect();
            nodes.sort();
            nodes.dedup();
            println!("nodes {nodes:?}");
            println!("in steps {}", seen.iter().all(|(_, s)| *s));
        }
        other => panic!("no scenario {other}"),
    }
    println!("END");
}
