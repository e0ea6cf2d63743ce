//! Compile-fail cases of futurize live in tests/ui; the runner is tests/compile_fail.rs.
