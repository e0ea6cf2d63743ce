//! Cluster plans against a real OpenSSH server on 127.0.0.1–3 (the project's
//! own scripts/test-sshd.sh): hosts node1..node3, each telling its workers
//! which node they are on through `FUTURIZE_TEST_NODE`.

mod common;

use common::sshd;
use futurize::prelude::*;

fn node() -> String {
    std::env::var("FUTURIZE_TEST_NODE").unwrap_or_else(|_| "none".into())
}

#[test]
fn futures_and_loops_run_on_every_host() {
    let Some(c) = sshd::cluster(&["node1", "node2", "node3"]) else {
        return;
    };
    let _g = with_plan(c);
    let f = future!(node());
    assert!(f.value().unwrap().starts_with("node"));
    let nodes: Vec<String> = foreach!(i in 0..30u32 => {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let _ = i;
        node()
    } %dofuture% chunk_size = 1)
    .unwrap();
    let mut seen = nodes.clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, vec!["node1", "node2", "node3"], "{nodes:?}");
}
