//! Scopes and patterns: which names the body binds, and so which it captures.
//!
//! The walker keeps a stack of scopes, one per block, closure, loop, `if`
//! and `match` arm. The invariant: a name is a capture when it can be a
//! variable (snake_case, not `_` or `self`), no scope on the stack binds it,
//! and it was not seen before; each capture is recorded once, where it is
//! first used. Patterns bind only their identifiers: the paths and
//! expressions inside them (consts, ranges) bind nothing.

use super::Walker;
use std::collections::HashSet;
use syn::visit::{self, Visit};
use syn::{Expr, Ident, Pat};

/// Whether `name` can be a variable (snake_case), not an item.
fn is_variable_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_lowercase() || c == '_')
        && name != "_"
        && name != "self"
}

impl Walker {
    fn is_bound(&self, name: &str) -> bool {
        self.scopes.iter().any(|s| s.contains(name))
    }

    pub(super) fn bind(&mut self, name: String) {
        self.scopes.last_mut().expect("a scope").insert(name);
    }

    pub(super) fn bind_pattern(&mut self, pat: &Pat) {
        for name in pattern_names(pat) {
            self.bind(name);
        }
    }

    pub(super) fn scoped(&mut self, f: impl FnOnce(&mut Self)) {
        self.scopes.push(HashSet::new());
        f(self);
        self.scopes.pop();
    }

    pub(super) fn use_name(&mut self, ident: &Ident) {
        let name = ident.to_string();
        if name == "self" {
            self.found.self_span.get_or_insert(ident.span());
        } else if is_variable_name(&name) && !self.is_bound(&name) && self.seen.insert(name) {
            self.found.captures.push(ident.clone());
        }
    }

    /// A one-segment callee: recorded when the body does not bind it.
    pub(super) fn note_callee(&mut self, ident: &Ident) {
        let name = ident.to_string();
        if is_variable_name(&name)
            && !self.is_bound(&name)
            && !self.found.callees.iter().any(|c| *c == name)
        {
            self.found.callees.push(ident.clone());
        }
    }

    /// A free variable on the left of `=` or `op=`.
    pub(super) fn note_write(&mut self, target: &Expr) {
        if let Expr::Path(p) = target
            && let Some(ident) = p.path.get_ident()
        {
            let name = ident.to_string();
            if is_variable_name(&name) && !self.is_bound(&name) {
                self.found.writes.push(ident.clone());
            }
        }
    }

    /// Records `receiver.method(..)` as a write when the receiver is a free
    /// variable and the method one of std's that take `&mut self`.
    pub(super) fn note_method_call(&mut self, call: &syn::ExprMethodCall) {
        let method = call.method.to_string();
        if !super::MUTATING_METHODS.contains(&method.as_str()) {
            return;
        }
        if let Expr::Path(p) = &*call.receiver
            && let Some(ident) = p.path.get_ident()
        {
            let name = ident.to_string();
            if is_variable_name(&name) && !self.is_bound(&name) {
                self.found.mutating_calls.push((ident.clone(), method));
            }
        }
    }
}

/// The names `pat` binds (its snake_case identifiers), in order.
pub(crate) fn pattern_names(pat: &Pat) -> Vec<String> {
    let mut binder = PatternBindings(Vec::new());
    binder.visit_pat(pat);
    binder.0
}

struct PatternBindings(Vec<String>);

impl<'ast> Visit<'ast> for PatternBindings {
    fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
        let name = p.ident.to_string();
        if is_variable_name(&name) {
            self.0.push(name);
        }
        visit::visit_pat_ident(self, p);
    }
    // Paths and expressions inside patterns (consts, ranges) bind nothing.
    fn visit_expr(&mut self, _: &'ast Expr) {}
}
