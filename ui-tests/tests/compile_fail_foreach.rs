//! Misuse of `foreach!` and `#[futurize]` that must not compile; each case's
//! `.stderr` is the documentation of its diagnostic.

#[test]
fn foreach_and_futurize_misuse() {
    trybuild::TestCases::new().compile_fail("tests/ui_foreach/*.rs");
}
