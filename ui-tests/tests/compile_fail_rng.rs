//! Random numbers drawn without a seed, or from rand's per-thread generators,
//! must not compile; each `.stderr` documents the diagnostic.

#[test]
fn random_number_misuse() {
    trybuild::TestCases::new().compile_fail("tests/ui_rng/*.rs");
}
