//! The capture walk: which variables a body uses from outside.
//!
//! A capture is a free variable: a one-segment, lower-case path in value
//! position that no `let`, closure parameter, `for`/`match`/`if let` pattern,
//! nested `foreach!` element pattern or nested item inside the body binds
//! (with block scoping). Items are never
//! captured: upper-case names (consts, statics, unit structs, variants), `::`
//! paths and callees (`f(..)`) are referred to directly by the body.
//!
//! The walk guesses; the compiler checks the guess. A variable the walk
//! misses makes the body closure capture it, which the no-capture proof
//! turns into "`y` captured here". `globals = [..]` replaces the guess. The
//! callees are recorded too: `#[futurize]`, which sees the whole function,
//! tells the function's closures among them from `fn` items.
//!
//! The walk also records what a body may not do: assign to a captured
//! variable, and leave the body with `return`, `?`, `break`, `continue` or
//! `.await` (inside nested closures and async blocks these are legal).
//!
//! The walk is one `Walker` over the body, its work split in submodules:
//! - `syntax`: how each statement and expression is walked;
//! - `scopes`: which names are bound where, and so which are captures;
//! - `exits`: which `return`, `?`, `break`, `continue` and `.await` leave the body;
//! - `macro_args`: the arguments of macros, whose grammar syn does not know;
//! - `nested_macros`: a `foreach!` or `future!` inside the body, walked by its grammar;
//! - `format_strings`: the names a format string uses, such as `"{x}"`.
//!
//! The walk only reports; `crate::check` turns its findings into errors.

mod exits;
mod format_strings;
mod macro_args;
mod nested_macros;
mod scopes;
mod syntax;

pub(crate) use scopes::pattern_names;

use proc_macro2::Span;
use std::collections::HashSet;
use syn::visit::Visit;
use syn::{Expr, Ident, Pat};

/// What the walk found in a body.
#[derive(Default)]
pub(crate) struct Findings {
    /// Free variables, first occurrence each, in order of appearance.
    pub(crate) captures: Vec<Ident>,
    /// The first `self` in value position, if any.
    pub(crate) self_span: Option<Span>,
    /// Free variables assigned to (`x = ..`, `x += ..`), where they are assigned.
    pub(crate) writes: Vec<Ident>,
    /// Free variables changed by a std method that takes `&mut self`
    /// (`out.push(..)`), with the method. Only `foreach!` reports these: a
    /// `future!` body owns its copy of a capture and may change it.
    pub(crate) mutating_calls: Vec<(Ident, String)>,
    /// Ways out of the body: (span, what it is).
    pub(crate) exits: Vec<(Span, &'static str)>,
    /// Calls of random generators: (span, the path as written).
    pub(crate) random_calls: Vec<(Span, String)>,
    /// One-segment callees (`f(..)`) that the body does not bind, first
    /// occurrence each. They are not captures: as a rule they are `fn`
    /// items, which the body calls directly. But the name may be a variable
    /// where the body is written (a closure, a function value), which the
    /// body's closure then captures; only `#[futurize]` sees that far.
    pub(crate) callees: Vec<Ident>,
}

/// The generators a body may call: futurize's own stream, and rand's
/// per-thread generators (whose numbers would depend on where a body runs).
pub(crate) const OWN_RNG: &[&str] = &["rng", "futurize::rng"];
/// Methods of std's collections and strings that take `&mut self`: called on
/// a capture, which a body only sees by reference or as its own copy, they
/// are a write to a variable from outside. Methods that some types take by
/// `&self` (an atomic's `swap`, a concurrent map's `insert` is rarer) are
/// left to rustc where the names are ambiguous.
const MUTATING_METHODS: &[&str] = &[
    "push",
    "push_str",
    "push_back",
    "push_front",
    "pop",
    "pop_back",
    "pop_front",
    "insert",
    "remove",
    "swap_remove",
    "extend",
    "extend_from_slice",
    "append",
    "clear",
    "truncate",
    "retain",
    "drain",
    "sort",
    "sort_by",
    "sort_by_key",
    "sort_unstable",
    "sort_unstable_by",
    "dedup",
    "reverse",
    "resize",
    "entry",
    "get_mut",
    "iter_mut",
];
const THREAD_RNGS: &[&str] = &[
    "rand::rng",
    "rand::thread_rng",
    "thread_rng",
    "rand::random",
];

/// Walks `body` and reports what it found.
pub(crate) fn walk(body: &Expr) -> Findings {
    walk_with_bound(body, &[])
}

/// Walks `body` with the bindings of `patterns` (a `foreach!`'s element
/// patterns) already in scope.
pub(crate) fn walk_with_bound(body: &Expr, patterns: &[Pat]) -> Findings {
    let mut w = Walker {
        scopes: vec![HashSet::new()],
        seen: HashSet::new(),
        found: Findings::default(),
        nested_fn: 0,
        loops: 0,
        labels: Vec::new(),
    };
    for p in patterns {
        w.bind_pattern(p);
    }
    w.visit_expr(body);
    w.found
}

struct Walker {
    scopes: Vec<HashSet<String>>,
    seen: HashSet<String>,
    found: Findings,
    /// Depth of nested closures and async blocks (where `return` etc. are legal).
    nested_fn: usize,
    /// Loops inside the body around the current point (outside nested closures).
    loops: usize,
    labels: Vec<String>,
}

#[cfg(test)]
mod tests;
