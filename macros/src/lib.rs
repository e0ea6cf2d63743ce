//! Procedural macros of [futurize](https://docs.rs/futurize): `future!`,
//! `foreach!` and `#[futurize]`.
//!
//! Each macro goes parse → analyse → generate (the shape of serde_derive):
//! `grammar` reads the input of `foreach!` and `future!`, `options` their
//! `name = value` lists (`settings` the per-task ones, each a field of the
//! runtime's options; `resources` the `resources = (...)` list, built as
//! the runtime's `Resources`), `captures` walks a body for its free
//! variables and misuse, `check` turns that misuse into errors,
//! `self_capture` settles the variables a body captures, and `expand_future`,
//! `expand_foreach` and `expand_futurize` write the code, with the pieces
//! they share in `generate`. No `expand_*` module uses another, and the
//! modules use each other one way: `options` → `settings` → `resources`.
//! Errors carry the span of the offending token and are collected in one
//! `errors::Errors` per call, checked once, so they are reported together.
//!
//! Use the macros through the `futurize` crate; generated code refers to
//! `::futurize`.

mod captures;
mod check;
mod errors;
mod expand_foreach;
mod expand_future;
mod expand_futurize;
mod futurize_checks;
mod generate;
mod grammar;
mod locals;
mod options;
mod relay_prints;
mod resources;
mod self_capture;
mod settings;

use proc_macro::TokenStream;

/// Creates a future: evaluates an expression under the plan in force.
/// See the `futurize` crate for documentation and examples.
#[proc_macro]
pub fn future(input: TokenStream) -> TokenStream {
    expand_future::expand(input.into()).into()
}

/// Runs a body once per element, under the plan (`%dofuture%`) or in place
/// (`%do%`). See the `futurize` crate for documentation and examples.
#[proc_macro]
pub fn foreach(input: TokenStream) -> TokenStream {
    expand_foreach::expand(input.into()).into()
}

/// Runs a function's iterator pipelines (`iter().map(..).collect()` and
/// kin) as parallel maps under the plan. See the `futurize` crate.
///
/// Sources may be shaped first: `(0..n).into_iter()`, `xs.iter().enumerate()`,
/// `xs.iter().zip(ys.iter())`, `xs.iter().copied()`. Options go to each
/// pipeline's `foreach!`, except `when = condition`: evaluated at each call
/// (it may use the parameters), it runs the pipelines in parallel when it
/// holds and as written when not, e.g. `#[futurize(when = xs.len() > 1000)]`.
/// `FUTURIZE_DISABLE=1` in the environment is the global off switch: every
/// plan becomes sequential, whatever `when` says.
#[proc_macro_attribute]
pub fn futurize(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand_futurize::expand(attr.into(), item.into()).into()
}
