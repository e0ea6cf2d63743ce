//! The entry point the handshake fuzz target calls runs the real handshake
//! code of both sides: a hello from this build is served and its frames
//! read, one from another build or version is refused with the reason a
//! user reads, and garbage is a protocol error, never a panic.

use futurize_runtime::__private::__fuzz_handshake;
use futurize_runtime::wire::{FromWorker, PROTOCOL_VERSION, ToWorker, write_message};

const LIMIT: u64 = 1 << 20;

fn frames(messages: &[ToWorker]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for m in messages {
        write_message(&mut bytes, m, b"xyz", LIMIT).unwrap();
    }
    bytes
}

fn run(worker_reads: &[u8], leader_reads: &[u8]) -> (String, String) {
    __fuzz_handshake(&mut &worker_reads[..], &mut &leader_reads[..], false, LIMIT)
}

/// What a worker makes of `frames` after a hello of this build.
fn run_greeted(frames: &[u8]) -> String {
    __fuzz_handshake(&mut &frames[..], &mut &[][..], true, LIMIT).0
}

#[test]
fn after_a_hello_of_this_build_the_frames_are_read_to_their_end() {
    let after = frames(&[ToWorker::KeepCaptures { call: 3 }, ToWorker::Shutdown]);
    assert_eq!(run_greeted(&after), "Shutdown with 3 bytes");
    assert_eq!(run_greeted(&[]), "serves under sequential");
    let cut = &after[..after.len() - 1];
    assert!(
        run_greeted(cut).contains("truncated"),
        "{}",
        run_greeted(cut)
    );
}

#[test]
fn another_version_is_refused_naming_both() {
    let hello = ToWorker::Hello {
        version: PROTOCOL_VERSION + 1,
        build_id: vec![1, 2],
        nested_plan: "sequential".into(),
    };
    let (worker, _) = run(&frames(&[hello]), &[]);
    assert_eq!(
        worker,
        format!(
            "the leader speaks protocol version {}, this worker {PROTOCOL_VERSION}",
            PROTOCOL_VERSION + 1
        )
    );
}

#[test]
fn another_build_is_refused_naming_it() {
    let hello = ToWorker::Hello {
        version: PROTOCOL_VERSION,
        build_id: vec![0xab, 0xcd],
        nested_plan: "sequential".into(),
    };
    let (worker, _) = run(&frames(&[hello]), &[]);
    assert!(
        worker.starts_with("the leader's executable (build abcd) differs from this worker's"),
        "{worker}"
    );
}

#[test]
fn a_first_frame_that_is_not_a_hello_is_a_protocol_error() {
    let (worker, _) = run(&frames(&[ToWorker::Shutdown]), &[]);
    assert!(
        worker.contains("expected a handshake, got Shutdown"),
        "{worker}"
    );
}

#[test]
fn garbage_is_an_error_on_both_sides_and_no_panic() {
    let garbage = [0xff_u8, 0xff, 0xff, 0x7f, 1, 2, 3];
    let (worker, leader) = run(&garbage, &garbage);
    assert!(worker.contains("bytes"), "{worker}");
    assert!(leader.starts_with("Incomplete("), "{leader}");
    let (worker, leader) = run(&[], &[]);
    assert_eq!(worker, "the leader closed the channel");
    assert_eq!(leader, "Incomplete(\"Ok(None)\")");
}

#[test]
fn a_refusal_and_a_ready_of_another_version_are_told_apart() {
    let mut refused = Vec::new();
    let refusal = FromWorker::Refused {
        reason: "no".into(),
    };
    write_message(&mut refused, &refusal, &[], LIMIT).unwrap();
    let (_, leader) = run(&[], &refused);
    assert_eq!(leader, "Refused(\"the worker refused the leader: no\")");
    let mut ready = Vec::new();
    let answer = FromWorker::Ready {
        version: PROTOCOL_VERSION + 1,
        build_id: vec![7],
        pid: 42,
    };
    write_message(&mut ready, &answer, &[], LIMIT).unwrap();
    let (_, leader) = run(&[], &ready);
    assert!(
        leader.starts_with("Mismatch(\"worker 42 answered with protocol"),
        "{leader}"
    );
}
