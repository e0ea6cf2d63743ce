//! Which names are a function's variables at a point of its body, for
//! `#[futurize]`: a pipeline's body that calls one (`model(x)`, with
//! `let model = |x| ..` above, or a parameter `model: impl Fn(f64) -> f64`)
//! would capture code, which a worker cannot receive. `foreach!` and
//! `future!` see only their own tokens and cannot ask this; the attribute
//! sees the whole function.
//!
//! The invariant: the innermost scope that names something decides, as in
//! Rust. A block's items (`fn model() {}`) are in scope in the whole block
//! and a `let` from its point on, so a `let` shadows an item of its block
//! and an item of an inner block shadows a variable of an outer one.

use crate::captures::pattern_names;
use std::collections::HashMap;
use syn::{FnArg, Pat, Signature, Stmt};

/// What a name in scope is.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) enum Local {
    /// A parameter of the function.
    Parameter,
    /// A variable the body binds: a `let`, a closure parameter, a pattern.
    Variable,
    /// A `fn` item declared in a block.
    Item,
}

/// The names in scope, innermost scope last. `default()` is one empty scope.
pub(crate) struct Locals {
    scopes: Vec<HashMap<String, Local>>,
}

impl Default for Locals {
    fn default() -> Self {
        Locals {
            scopes: vec![HashMap::new()],
        }
    }
}

impl Locals {
    /// The scope of a function's body: its parameters.
    pub(crate) fn of(sig: &Signature) -> Self {
        let mut locals = Locals::default();
        for input in &sig.inputs {
            if let FnArg::Typed(arg) = input {
                locals.insert(&arg.pat, Local::Parameter);
            }
        }
        locals
    }

    /// Opens a scope (a closure's, a loop's, a `match` arm's, an `if let`'s).
    pub(crate) fn open(&mut self) {
        self.scopes.push(HashMap::new());
    }

    /// Opens a block's scope, with the items the block declares.
    pub(crate) fn open_block(&mut self, stmts: &[Stmt]) {
        self.open();
        for stmt in stmts {
            if let Stmt::Item(syn::Item::Fn(f)) = stmt {
                self.innermost()
                    .insert(f.sig.ident.to_string(), Local::Item);
            }
        }
    }

    pub(crate) fn close(&mut self) {
        self.scopes.pop();
    }

    /// Binds the variables of `pat` in the innermost scope.
    pub(crate) fn bind(&mut self, pat: &Pat) {
        self.insert(pat, Local::Variable);
    }

    /// What `name` is here, if the function binds or declares it (else it is
    /// an item from outside the function, or unknown).
    pub(crate) fn get(&self, name: &str) -> Option<Local> {
        self.scopes
            .iter()
            .rev()
            .find_map(|scope| scope.get(name).copied())
    }

    fn insert(&mut self, pat: &Pat, what: Local) {
        for name in pattern_names(pat) {
            self.innermost().insert(name, what);
        }
    }

    fn innermost(&mut self) -> &mut HashMap<String, Local> {
        self.scopes.last_mut().expect("the function's scope")
    }
}

#[cfg(test)]
mod tests {
    use super::{Local, Locals};
    use syn::parse_quote;

    #[test]
    fn the_innermost_scope_decides() {
        let sig: syn::Signature = parse_quote!(fn f(xs: &[f64], (a, b): (u8, u8), g: G));
        let mut locals = Locals::of(&sig);
        for name in ["xs", "a", "b", "g"] {
            assert_eq!(locals.get(name), Some(Local::Parameter), "{name}");
        }
        assert_eq!(locals.get("model"), None);
        let stmts: Vec<syn::Stmt> = vec![parse_quote!(
            fn g() {}
        )];
        locals.open_block(&stmts);
        assert_eq!(
            locals.get("g"),
            Some(Local::Item),
            "an inner item shadows a parameter"
        );
        locals.bind(&parse_quote!(model));
        assert_eq!(locals.get("model"), Some(Local::Variable));
        locals.open();
        locals.bind(&parse_quote!(Some(g)));
        assert_eq!(
            locals.get("g"),
            Some(Local::Variable),
            "a pattern shadows an item"
        );
        locals.close();
        assert_eq!(locals.get("g"), Some(Local::Item));
        locals.close();
        assert_eq!(locals.get("g"), Some(Local::Parameter));
        assert_eq!(locals.get("model"), None, "a block's variables end with it");
    }
}
