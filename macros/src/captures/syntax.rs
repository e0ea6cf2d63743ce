//! The walk over Rust syntax: how each statement and expression is visited.
//!
//! Each form opens the scopes it opens in Rust (blocks, closures, loops,
//! `if let`, `match` arms), binds what its patterns bind, and marks where the
//! body may not write or leave. The invariant: every expression of the body
//! is visited once, in source order, with the scopes in force where it is
//! written, so captures are found in order of appearance. Nested items are
//! the exception: only their names bind, their bodies are not the body's.

use super::{OWN_RNG, THREAD_RNGS, Walker};
use syn::visit::{self, Visit};
use syn::{Expr, Macro, Stmt};

impl<'ast> Visit<'ast> for Walker {
    fn visit_block(&mut self, block: &'ast syn::Block) {
        self.scoped(|w| {
            for stmt in &block.stmts {
                w.visit_stmt(stmt);
            }
        });
    }

    fn visit_stmt(&mut self, stmt: &'ast Stmt) {
        match stmt {
            Stmt::Local(local) => {
                if let Some(init) = &local.init {
                    self.visit_expr(&init.expr);
                    if let Some((_, diverge)) = &init.diverge {
                        self.visit_expr(diverge);
                    }
                }
                self.bind_pattern(&local.pat);
            }
            Stmt::Item(item) => self.visit_item(item),
            Stmt::Expr(e, _) => self.visit_expr(e),
            Stmt::Macro(m) => self.visit_macro_args(&m.mac),
        }
    }

    /// Nested items are not part of the body's scope: only their names bind.
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let name = match item {
            syn::Item::Fn(f) => Some(&f.sig.ident),
            syn::Item::Const(c) => Some(&c.ident),
            syn::Item::Static(s) => Some(&s.ident),
            _ => None,
        };
        if let Some(n) = name {
            self.bind(n.to_string());
        }
    }

    fn visit_expr_closure(&mut self, c: &'ast syn::ExprClosure) {
        self.in_closure(|w| {
            w.scoped(|w| {
                for input in &c.inputs {
                    w.bind_pattern(input);
                }
                w.visit_expr(&c.body);
            })
        });
    }

    fn visit_expr_async(&mut self, a: &'ast syn::ExprAsync) {
        self.in_closure(|w| w.visit_block(&a.block));
    }

    fn visit_expr_for_loop(&mut self, f: &'ast syn::ExprForLoop) {
        self.visit_expr(&f.expr);
        self.scoped(|w| {
            w.bind_pattern(&f.pat);
            w.in_loop(f.label.as_ref(), |w| w.visit_block(&f.body));
        });
    }

    fn visit_expr_while(&mut self, e: &'ast syn::ExprWhile) {
        self.scoped(|w| {
            w.visit_expr(&e.cond);
            w.in_loop(e.label.as_ref(), |w| w.visit_block(&e.body));
        });
    }

    fn visit_expr_loop(&mut self, e: &'ast syn::ExprLoop) {
        self.in_loop(e.label.as_ref(), |w| w.visit_block(&e.body));
    }

    fn visit_expr_block(&mut self, e: &'ast syn::ExprBlock) {
        match &e.label {
            // A labelled block may be left with `break 'label`, but not with a bare `break`.
            Some(label) => {
                self.labels.push(label.name.ident.to_string());
                self.visit_block(&e.block);
                self.labels.pop();
            }
            None => self.visit_block(&e.block),
        }
    }

    fn visit_expr_if(&mut self, e: &'ast syn::ExprIf) {
        self.scoped(|w| {
            w.visit_expr(&e.cond);
            w.visit_block(&e.then_branch);
        });
        if let Some((_, else_branch)) = &e.else_branch {
            self.visit_expr(else_branch);
        }
    }

    fn visit_expr_let(&mut self, e: &'ast syn::ExprLet) {
        self.visit_expr(&e.expr);
        self.bind_pattern(&e.pat);
    }

    fn visit_expr_match(&mut self, m: &'ast syn::ExprMatch) {
        self.visit_expr(&m.expr);
        for arm in &m.arms {
            self.scoped(|w| {
                w.bind_pattern(&arm.pat);
                if let Some((_, guard)) = &arm.guard {
                    w.visit_expr(guard);
                }
                w.visit_expr(&arm.body);
            });
        }
    }

    fn visit_expr_path(&mut self, p: &'ast syn::ExprPath) {
        if p.qself.is_none()
            && let Some(ident) = p.path.get_ident()
        {
            self.use_name(ident);
        }
    }

    fn visit_expr_call(&mut self, c: &'ast syn::ExprCall) {
        // A one-segment callee is taken for a fn item, not a capture; it is
        // recorded, for `#[futurize]` to tell a closure of the function.
        if let Expr::Path(p) = &*c.func {
            let path: Vec<String> = p
                .path
                .segments
                .iter()
                .map(|s| s.ident.to_string())
                .collect();
            let path = path.join("::");
            if OWN_RNG.contains(&path.as_str()) || THREAD_RNGS.contains(&path.as_str()) {
                let span = syn::spanned::Spanned::span(&p.path);
                self.found.random_calls.push((span, path));
            }
        }
        match &*c.func {
            Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                self.note_callee(p.path.get_ident().expect("one segment"));
            }
            other => self.visit_expr(other),
        }
        for arg in &c.args {
            self.visit_expr(arg);
        }
    }

    fn visit_expr_method_call(&mut self, m: &'ast syn::ExprMethodCall) {
        self.note_method_call(m);
        visit::visit_expr_method_call(self, m);
    }

    fn visit_expr_assign(&mut self, a: &'ast syn::ExprAssign) {
        self.note_write(&a.left);
        visit::visit_expr_assign(self, a);
    }

    fn visit_expr_binary(&mut self, b: &'ast syn::ExprBinary) {
        use syn::BinOp::*;
        if matches!(
            b.op,
            AddAssign(_)
                | SubAssign(_)
                | MulAssign(_)
                | DivAssign(_)
                | RemAssign(_)
                | BitXorAssign(_)
                | BitAndAssign(_)
                | BitOrAssign(_)
                | ShlAssign(_)
                | ShrAssign(_)
        ) {
            self.note_write(&b.left);
        }
        visit::visit_expr_binary(self, b);
    }

    fn visit_expr_return(&mut self, r: &'ast syn::ExprReturn) {
        self.record_exit(r.return_token.span, "return");
        visit::visit_expr_return(self, r);
    }

    fn visit_expr_try(&mut self, t: &'ast syn::ExprTry) {
        self.record_exit(t.question_token.span, "?");
        visit::visit_expr_try(self, t);
    }

    fn visit_expr_break(&mut self, b: &'ast syn::ExprBreak) {
        self.jump(b.label.as_ref(), b.break_token.span, "break");
        visit::visit_expr_break(self, b);
    }

    fn visit_expr_continue(&mut self, c: &'ast syn::ExprContinue) {
        self.jump(c.label.as_ref(), c.continue_token.span, "continue");
    }

    fn visit_expr_await(&mut self, a: &'ast syn::ExprAwait) {
        self.record_exit(a.await_token.span, ".await");
        visit::visit_expr_await(self, a);
    }

    fn visit_macro(&mut self, mac: &'ast Macro) {
        self.visit_macro_args(mac);
    }
}
