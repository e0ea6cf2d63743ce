//! Ways out of the body: `return`, `?`, `break`, `continue` and `.await`.
//!
//! The body runs as a function of its own, so none of these may leave it.
//! The invariant: an exit is recorded only when it would leave the body.
//! Inside a nested closure or async block every exit is the inner
//! function's own; `break` and `continue` are the body's own when a loop
//! inside the body (or the labelled loop or block they name) encloses them.

use super::Walker;
use proc_macro2::Span;

impl Walker {
    pub(super) fn record_exit(&mut self, span: Span, what: &'static str) {
        if self.nested_fn == 0 {
            self.found.exits.push((span, what));
        }
    }

    pub(super) fn in_closure(&mut self, f: impl FnOnce(&mut Self)) {
        let loops = std::mem::take(&mut self.loops);
        let labels = std::mem::take(&mut self.labels);
        self.nested_fn += 1;
        f(self);
        self.nested_fn -= 1;
        self.loops = loops;
        self.labels = labels;
    }

    pub(super) fn in_loop(&mut self, label: Option<&syn::Label>, f: impl FnOnce(&mut Self)) {
        self.loops += 1;
        if let Some(l) = label {
            self.labels.push(l.name.ident.to_string());
        }
        f(self);
        if label.is_some() {
            self.labels.pop();
        }
        self.loops -= 1;
    }

    pub(super) fn jump(&mut self, label: Option<&syn::Lifetime>, span: Span, what: &'static str) {
        let inside = match label {
            Some(l) => self.labels.contains(&l.ident.to_string()),
            None => self.loops > 0,
        };
        if !inside {
            self.record_exit(span, what);
        }
    }
}
