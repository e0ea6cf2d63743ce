//! Checks of a body, shared by `future!` and `foreach!`: the misuse the
//! capture walk found, turned into compile errors.
//!
//! A body may not leave itself (`return`, `?`, `break`, `continue`,
//! `.await`), assign to a variable from outside, or draw random numbers that
//! would depend on the plan. The invariant: checks only add errors, each with
//! the span of the offending token, and every misuse is reported, so a user
//! fixes them in one pass; checks never generate code.

use crate::captures::{Findings, OWN_RNG};
use crate::errors::Errors;
use syn::Ident;

/// Reports what a body may not do: leave itself, or assign to a capture
/// (`write_hint` says why not, and what to do instead).
pub(crate) fn check_body(found: &Findings, errors: &Errors, write_hint: impl Fn(&Ident) -> String) {
    for (span, what) in &found.exits {
        errors.error_at(
            *span,
            format!(
                "`{what}` cannot leave the body of a future: the body runs as a function \
                 of its own, possibly in another process. Let the body's value say what \
                 happened (a `Result` or an `Option`) and act on it after `.value()`"
            ),
        );
    }
    for ident in &found.writes {
        errors.error_at(ident.span(), write_hint(ident));
    }
}

/// Reports random generators a body may not use: futurize's `rng()` without
/// a seed, and rand's per-thread generators at all.
pub(crate) fn check_random(found: &Findings, seeded: bool, errors: &Errors) {
    for (span, path) in &found.random_calls {
        let message = if OWN_RNG.contains(&path.as_str()) {
            if seeded {
                continue;
            }
            format!(
                "`{path}()` draws from the element's own random stream, which needs a seed: \
                 add `seed = true` to the options (or `seed = 42` for a fixed seed)"
            )
        } else {
            let fix = if seeded {
                ""
            } else {
                " and add `seed = true` to the options"
            };
            format!(
                "`{path}` draws from a per-thread generator, so the numbers would change with \
                 the plan and the worker that runs the body; use futurize's `rng()`{fix}"
            )
        };
        errors.error_at(*span, message);
    }
}
