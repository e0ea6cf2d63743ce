//! Feeds arbitrary text to `Plan::parse_from`, as `FUTURIZE_PLAN` (user input)
//! and the handshake's `nested_plan` reach it: it must answer with a plan or
//! an `Error::Plan`, never panic; a plan's text form must parse back to the
//! same plan (the leader sends `nested.to_string()` to its workers).
#![no_main]

use futurize_runtime::Plan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let plan = match Plan::parse_from(&text, "FUTURIZE_PLAN") {
        Ok(plan) => plan,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let shown = plan.to_string();
    let again = Plan::parse_from(&shown, "FUTURIZE_PLAN").unwrap_or_else(|e| {
        panic!("{text:?} parsed to {plan:?}, whose text {shown:?} does not parse: {e}")
    });
    assert_eq!(again, plan, "{text:?} -> {shown:?} parsed differently");
    for level in plan.levels() {
        let _ = level.workers();
    }
    let _ = plan.nested().to_string();
});
