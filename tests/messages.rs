//! Messages a user reads after the fact: a chunk lost after its retries
//! ran out says it was retried and how often.

use futurize::Error;
use futurize::prelude::*;

#[test]
fn a_chunk_lost_after_its_retries_says_how_often_it_ran() {
    let _g = with_plan(Multiprocess::workers(2));
    let r: Result<Vec<u32>, Error> = foreach!(i in 0..4u32 => {
        if i == 1 {
            std::process::abort();
        }
        i
    } %dofuture% chunk_size = 2, retries = 2);
    let e = r.unwrap_err();
    assert!(matches!(e, Error::WorkerDied { .. }), "{e:?}");
    let message = e.to_string();
    assert!(message.contains("elements 0..=1"), "{message}");
    assert!(
        message.contains("run 3 times (`retries = 2`) and each time its worker died"),
        "{message}"
    );
}

#[test]
fn a_chunk_lost_without_retries_says_nothing_about_them() {
    let _g = with_plan(Multiprocess::workers(2));
    let r: Result<Vec<u32>, Error> = foreach!(i in 0..4u32 => {
        if i == 3 {
            std::process::abort();
        }
        i
    } %dofuture% chunk_size = 2);
    let message = r.unwrap_err().to_string();
    assert!(message.contains("elements 2..=3"), "{message}");
    assert!(!message.contains("retries"), "{message}");
}
