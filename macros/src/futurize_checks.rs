//! What `#[futurize]` says about a function it cannot rewrite as written:
//! chains that are almost pipelines (`filter(..).map(..)`, `xs.chunks(n)`),
//! a pipeline that calls a variable of the function (a closure), and generic
//! parameters that a pipeline's captures need to be `'static`.
//!
//! The invariant: these checks only add errors (each at the offending
//! token) to the one collector; they never rewrite.

use crate::errors::Errors;
use crate::locals::Local;
use std::collections::HashSet;
use syn::visit::Visit;
use syn::{Expr, FnArg, GenericParam, Ident, Signature, Type, TypeParamBound, WherePredicate};

/// Sources that yield borrowed slices, which a worker cannot rebuild.
const BORROWED_SOURCES: &[&str] = &["chunks", "chunks_exact", "windows", "rchunks"];

/// Reports the chains in `block` that are almost pipelines; returns whether
/// it found one. `looks_for` is what `#[futurize]` looks for.
pub(crate) fn near_misses(block: &syn::Block, looks_for: &str, errors: &Errors) -> bool {
    let mut finder = NearMisses {
        looks_for,
        errors,
        found: false,
    };
    finder.visit_block(block);
    finder.found
}

struct NearMisses<'a> {
    looks_for: &'a str,
    errors: &'a Errors,
    found: bool,
}

impl<'ast> Visit<'ast> for NearMisses<'_> {
    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        let mut methods = Vec::new();
        let mut e: &Expr = &Expr::MethodCall(call.clone());
        while let Expr::MethodCall(m) = e {
            methods.push(m.method.clone());
            e = &m.receiver;
        }
        methods.reverse();
        let names: Vec<String> = methods.iter().map(|m| m.to_string()).collect();
        if let Some(i) = names
            .windows(2)
            .position(|w| w[0] == "filter" && w[1] == "map")
        {
            self.report(
                &methods[i],
                "`filter(..).map(..)` is not one: write the two as one `filter_map`, \
                 which `#[futurize]` runs in parallel, such as \
                 `xs.iter().filter_map(|x| if keep(x) { Some(run_one(x)) } else { None })`",
            );
        }
        if let Some(i) = names
            .iter()
            .position(|n| BORROWED_SOURCES.contains(&n.as_str()))
        {
            self.report(
                &methods[i],
                "a chain over `chunks(..)` or `windows(..)` is not one: its items are \
                 borrowed slices, which a worker cannot rebuild. Collect owned chunks \
                 first (`let chunks: Vec<Vec<f64>> = xs.chunks(4).map(|c| c.to_vec()).collect();`), \
                 then run `chunks.iter().map(..)`",
            );
        }
        syn::visit::visit_expr_method_call(self, call);
    }

    /// Nested items are not the function's pipelines.
    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

impl NearMisses<'_> {
    fn report(&mut self, at: &syn::Ident, hint: &str) {
        self.found = true;
        self.errors
            .error_at(at.span(), format!("{}; {hint}", self.looks_for));
    }
}

/// Reports the variables of `function` that a pipeline's body calls
/// (`model(x)`, with `let model = |x| ..` or a parameter `model: impl Fn(..)`):
/// a worker receives the body's captures as bytes, which a closure or a
/// function value cannot be, and rustc would only say "expected fn pointer,
/// found closure" at the attribute. The fix differs: a variable can become a
/// `fn` item; a parameter is the caller's choice, which travels as data.
pub(crate) fn called_variables(called: &[(Ident, Local)], function: &Ident, errors: &Errors) {
    for (name, local) in called {
        let (what, fix) = match local {
            Local::Parameter => (
                "a parameter",
                format!(
                    "Let callers choose with data instead: a serializable value the body \
                     reads (the model's coefficients, an enum of the models), or a type \
                     parameter whose function the body calls (`fn {function}<M: Model>(..)` \
                     and `M::eval(x)` in the body)"
                ),
            ),
            _ => (
                "a variable",
                format!(
                    "Make it a function item (`fn {name}(x: f64) -> f64 {{ .. }}`), which the \
                     body calls directly wherever it runs, or capture the data it uses (its \
                     parameters, in a serializable struct) and write the computation in the body"
                ),
            ),
        };
        errors.error_at(
            name.span(),
            format!(
                "`{name}` is {what} of `{function}` (a closure or a function value), and \
                 `#[futurize]` runs the pipeline that calls it on workers, possibly in other \
                 processes, which receive data, not code. {fix}"
            ),
        );
    }
}

/// Reports the type parameters of `sig` that a pipeline's captures need to
/// be `'static` and are not: a worker rebuilds every capture as an owned
/// value, so rustc would only say "the parameter type `M` may not live long
/// enough" at the attribute. `captured` are the names the pipelines capture.
pub(crate) fn generic_captures(sig: &Signature, captured: &HashSet<String>, errors: &Errors) {
    let with_static = static_bounded(sig);
    for input in &sig.inputs {
        let FnArg::Typed(arg) = input else { continue };
        let syn::Pat::Ident(name) = &*arg.pat else {
            continue;
        };
        let name = name.ident.to_string();
        if !captured.contains(&name) {
            continue;
        }
        for param in sig.generics.type_params() {
            let t = &param.ident;
            if with_static.contains(&t.to_string()) || !mentions(&arg.ty, t) {
                continue;
            }
            errors.error_at(
                t.span(),
                format!(
                    "`#[futurize]` runs a pipeline that captures `{name}`, whose type uses \
                     `{t}`: a worker rebuilds every capture as an owned value, so `{t}` must \
                     own its data. Add `{t}: 'static` to its bounds (with \
                     `serde::Serialize + serde::de::DeserializeOwned`, which captured \
                     values implement)"
                ),
            );
        }
    }
}

/// The type parameters bounded by `'static`, inline or in the where clause.
fn static_bounded(sig: &Signature) -> HashSet<String> {
    let is_static =
        |b: &TypeParamBound| matches!(b, TypeParamBound::Lifetime(l) if l.ident == "static");
    let mut out = HashSet::new();
    for param in &sig.generics.params {
        if let GenericParam::Type(t) = param
            && t.bounds.iter().any(is_static)
        {
            out.insert(t.ident.to_string());
        }
    }
    for predicate in sig.generics.where_clause.iter().flat_map(|w| &w.predicates) {
        if let WherePredicate::Type(p) = predicate
            && let Type::Path(path) = &p.bounded_ty
            && let Some(ident) = path.path.get_ident()
            && p.bounds.iter().any(is_static)
        {
            out.insert(ident.to_string());
        }
    }
    out
}

/// Whether `ty` names the type parameter `t`.
fn mentions(ty: &Type, t: &syn::Ident) -> bool {
    struct Finds<'a>(&'a syn::Ident, bool);
    impl<'ast> Visit<'ast> for Finds<'_> {
        fn visit_path(&mut self, p: &'ast syn::Path) {
            if p.is_ident(self.0) {
                self.1 = true;
            }
            syn::visit::visit_path(self, p);
        }
    }
    let mut finds = Finds(t, false);
    finds.visit_type(ty);
    finds.1
}
