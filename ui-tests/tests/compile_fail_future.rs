//! Misuse of `future!` that must not compile, and uses that must; each
//! case's `.stderr` is the documentation of its diagnostic.

#[test]
fn future_misuse() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui_future/*.rs");
    t.pass("tests/pass/*.rs");
}
