//! `plan()` sets the plan of the whole program; kept in a test binary of its
//! own so other tests never see it.

use futurize::prelude::*;

#[test]
fn plan_sets_the_program_plan_and_returns_the_previous_one() {
    let previous = plan(Multithread::workers(2));
    assert_eq!(previous.to_string(), "sequential");
    assert_eq!(current_plan().unwrap().to_string(), "multithread:2");
    // Other threads see it too.
    let seen = std::thread::spawn(|| current_plan().unwrap().to_string())
        .join()
        .unwrap();
    assert_eq!(seen, "multithread:2");
    let f = future!(std::thread::current().name().map(str::to_string));
    assert!(f.value().unwrap().unwrap().starts_with("futurize-worker-"));
    // A scope wins over the program plan inside its thread.
    {
        let _g = with_plan(Sequential);
        assert_eq!(nbr_of_workers().unwrap(), 1);
    }
    let back = plan(previous);
    assert_eq!(back.to_string(), "multithread:2");
    assert_eq!(current_plan().unwrap().to_string(), "sequential");
}
