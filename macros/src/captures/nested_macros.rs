//! `foreach!` and `future!` nested in a body, walked by their own grammar.
//!
//! Nested parallelism is a body that runs a `foreach!` or creates futures:
//! on a worker they run under the next level of the plan. What the nested
//! macro uses from outside the body is a capture of the body, so the walk
//! reads the nested call with the parser of the macro itself
//! (`crate::grammar`) and walks each part where it is evaluated: the
//! iterables and option values in the enclosing scope, the nested body in a
//! scope of its own with the element patterns bound.
//!
//! The invariant: the operator (`%dofuture%`, `%do%`), option names and
//! element patterns are never captures; a variable the nested body or an
//! option value uses from outside always is. What the nested macro checks
//! itself, the exits of its body and the random generators it calls, is
//! left to it. A call that does not parse by the grammar is scanned like the
//! arguments of any other macro.

use super::Walker;
use crate::grammar::{ForeachInput, FutureInput};
use crate::options::RawOption;
use syn::visit::Visit;
use syn::{Expr, Macro, Path};

enum NestedMacro {
    Foreach,
    Future,
}

/// Which of futurize's macros `path` names: `foreach`, `futurize::foreach`,
/// `::futurize::future`, `futurize::prelude::future`.
fn nested_macro(path: &Path) -> Option<NestedMacro> {
    let names: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    let name = match names.as_slice() {
        [name] => name,
        [krate, .., name] if krate == "futurize" => name,
        _ => return None,
    };
    match name.as_str() {
        "foreach" => Some(NestedMacro::Foreach),
        "future" => Some(NestedMacro::Future),
        _ => None,
    }
}

impl Walker {
    /// Walks `mac` when it is a `foreach!` or `future!` written by its
    /// grammar; false (nothing walked) otherwise.
    pub(super) fn visit_nested_macro(&mut self, mac: &Macro) -> bool {
        match nested_macro(&mac.path) {
            Some(NestedMacro::Foreach) => match mac.parse_body::<ForeachInput>() {
                Ok(input) => {
                    self.visit_nested_foreach(&input);
                    true
                }
                Err(_) => false,
            },
            Some(NestedMacro::Future) => match mac.parse_body::<FutureInput>() {
                Ok(input) => {
                    self.in_nested_body(|w| w.visit_expr(&input.body));
                    self.visit_nested_options(&input.options);
                    true
                }
                Err(_) => false,
            },
            None => false,
        }
    }

    fn visit_nested_foreach(&mut self, input: &ForeachInput) {
        for binding in &input.bindings {
            self.visit_expr(&binding.iterable);
        }
        self.in_nested_body(|w| {
            for binding in &input.bindings {
                w.bind_pattern(&binding.pat);
            }
            w.visit_expr(&input.body);
        });
        self.visit_nested_options(&input.options);
    }

    /// A nested body is a function of its own, like a closure; its random
    /// generators are checked against its own `seed`.
    fn in_nested_body(&mut self, f: impl FnOnce(&mut Self)) {
        let random_calls = self.found.random_calls.len();
        self.in_closure(|w| w.scoped(f));
        self.found.random_calls.truncate(random_calls);
    }

    /// Option values, not names: `chunk_size = n` uses `n`, and
    /// `resources = (cpus = c)` uses `c`, not `cpus`.
    fn visit_nested_options(&mut self, options: &[RawOption]) {
        for option in options {
            if option.name == "resources" {
                self.visit_resources(&option.value);
            } else {
                self.visit_expr(&option.value);
            }
        }
    }

    fn visit_resources(&mut self, value: &Expr) {
        let requests: Vec<&Expr> = match value {
            Expr::Tuple(t) => t.elems.iter().collect(),
            Expr::Paren(p) => vec![&*p.expr],
            other => vec![other],
        };
        for request in requests {
            match request {
                Expr::Assign(a) => self.visit_expr(&a.right),
                other => self.visit_expr(other),
            }
        }
    }
}
