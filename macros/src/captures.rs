//! The capture walk: which variables a body uses from outside.
//!
//! A capture is a free variable: a one-segment, lower-case path in value
//! position that no `let`, closure parameter, `for`/`match`/`if let` pattern
//! or nested item inside the body binds (with block scoping). Items are never
//! captured: upper-case names (consts, statics, unit structs, variants), `::`
//! paths and callees (`f(..)`) are referred to directly by the body.
//!
//! The walk guesses; the compiler checks the guess. A variable the walk
//! misses makes the body closure capture it, which `__no_capture` turns into
//! "`y` captured here". `globals = [..]` replaces the guess.
//!
//! The walk also records what a body may not do: assign to a captured
//! variable, and leave the body with `return`, `?`, `break`, `continue` or
//! `.await` (inside nested closures and async blocks these are legal).

use crate::format_names::implicit_names;
use proc_macro2::{Span, TokenStream, TokenTree};
use std::collections::HashSet;
use syn::parse::ParseStream;
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Expr, Ident, Macro, Pat, Stmt, Token};

/// What the walk found in a body.
#[derive(Default)]
pub struct Findings {
    /// Free variables, first occurrence each, in order of appearance.
    pub captures: Vec<Ident>,
    /// The first `self` in value position, if any.
    pub self_span: Option<Span>,
    /// Free variables assigned to (`x = ..`, `x += ..`), where they are assigned.
    pub writes: Vec<Ident>,
    /// Ways out of the body: (span, what it is).
    pub escapes: Vec<(Span, &'static str)>,
    /// Calls of random generators: (span, the path as written).
    pub random_calls: Vec<(Span, String)>,
}

/// The generators a body may call: futurize's own stream, and rand's
/// per-thread generators (whose numbers would depend on where a body runs).
pub const OWN_RNG: &[&str] = &["rng", "futurize::rng"];
const THREAD_RNGS: &[&str] = &[
    "rand::rng",
    "rand::thread_rng",
    "thread_rng",
    "rand::random",
];

/// Walks `body` and reports what it found.
pub fn walk(body: &Expr) -> Findings {
    walk_with_bound(body, &[])
}

/// Walks `body` with the bindings of `patterns` (a `foreach!`'s element
/// patterns) already in scope.
pub fn walk_with_bound(body: &Expr, patterns: &[Pat]) -> Findings {
    let mut outer = PatternBindings(Vec::new());
    for p in patterns {
        outer.visit_pat(p);
    }
    let mut w = Walker {
        scopes: vec![outer.0.into_iter().collect()],
        seen: HashSet::new(),
        found: Findings::default(),
        nested_fn: 0,
        loops: 0,
        labels: Vec::new(),
    };
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

    fn bind(&mut self, name: String) {
        self.scopes.last_mut().expect("a scope").insert(name);
    }

    fn bind_pattern(&mut self, pat: &Pat) {
        let mut binder = PatternBindings(Vec::new());
        binder.visit_pat(pat);
        for name in binder.0 {
            self.bind(name);
        }
    }

    fn scoped(&mut self, f: impl FnOnce(&mut Self)) {
        self.scopes.push(HashSet::new());
        f(self);
        self.scopes.pop();
    }

    fn use_name(&mut self, ident: &Ident) {
        let name = ident.to_string();
        if name == "self" {
            self.found.self_span.get_or_insert(ident.span());
        } else if is_variable_name(&name) && !self.is_bound(&name) && self.seen.insert(name) {
            self.found.captures.push(ident.clone());
        }
    }

    fn escape(&mut self, span: Span, what: &'static str) {
        if self.nested_fn == 0 {
            self.found.escapes.push((span, what));
        }
    }

    /// A free variable on the left of `=` or `op=`.
    fn note_write(&mut self, target: &Expr) {
        if let Expr::Path(p) = target
            && let Some(ident) = p.path.get_ident()
        {
            let name = ident.to_string();
            if is_variable_name(&name) && !self.is_bound(&name) {
                self.found.writes.push(ident.clone());
            }
        }
    }

    fn in_closure(&mut self, f: impl FnOnce(&mut Self)) {
        let loops = std::mem::take(&mut self.loops);
        let labels = std::mem::take(&mut self.labels);
        self.nested_fn += 1;
        f(self);
        self.nested_fn -= 1;
        self.loops = loops;
        self.labels = labels;
    }

    fn in_loop(&mut self, label: Option<&syn::Label>, f: impl FnOnce(&mut Self)) {
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

    fn jump(&mut self, label: Option<&syn::Lifetime>, span: Span, what: &'static str) {
        let inside = match label {
            Some(l) => self.labels.contains(&l.ident.to_string()),
            None => self.loops > 0,
        };
        if !inside {
            self.escape(span, what);
        }
    }

    fn visit_macro_args(&mut self, mac: &Macro) {
        let name = mac
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default();
        let format_at = match name.as_str() {
            "print" | "println" | "eprint" | "eprintln" | "format" | "format_args" | "panic"
            | "todo" | "unimplemented" | "unreachable" | "info" | "warn" | "error" | "debug"
            | "trace" | "dbg" | "vec" => Some(0),
            "write" | "writeln" | "assert" | "debug_assert" => Some(1),
            "assert_eq" | "assert_ne" | "debug_assert_eq" | "debug_assert_ne" => Some(2),
            _ => None,
        };
        let parsed = match name.as_str() {
            "matches" => return self.visit_matches(mac),
            "vec" => mac
                .parse_body_with(repeat_form)
                .or_else(|_| mac.parse_body_with(comma_separated)),
            _ if format_at.is_some() => mac.parse_body_with(format_macro_args),
            _ => Err(syn::Error::new(Span::call_site(), "unknown macro")),
        };
        match parsed {
            Ok(args) => {
                for (i, arg) in args.iter().enumerate() {
                    if Some(i) == format_at {
                        self.visit_format_string(arg);
                    }
                    self.visit_expr(arg);
                }
            }
            Err(_) => self.scan_tokens(mac.tokens.clone()),
        }
    }

    fn visit_format_string(&mut self, arg: &Expr) {
        if let Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) = arg
        {
            for name in implicit_names(&s.value()) {
                self.use_name(&Ident::new(&name, s.span()));
            }
        }
    }

    fn visit_matches(&mut self, mac: &Macro) {
        let parsed = mac.parse_body_with(|input: ParseStream| {
            let scrutinee: Expr = input.parse()?;
            input.parse::<Token![,]>()?;
            let pat = Pat::parse_multi_with_leading_vert(input)?;
            let guard = if input.parse::<Option<Token![if]>>()?.is_some() {
                Some(input.parse::<Expr>()?)
            } else {
                None
            };
            input.parse::<Option<Token![,]>>()?;
            Ok((scrutinee, pat, guard))
        });
        match parsed {
            Ok((scrutinee, pat, guard)) => {
                self.visit_expr(&scrutinee);
                self.scoped(|w| {
                    w.bind_pattern(&pat);
                    if let Some(g) = &guard {
                        w.visit_expr(g);
                    }
                });
            }
            Err(_) => self.scan_tokens(mac.tokens.clone()),
        }
    }

    /// Fallback for macros whose grammar is unknown: every snake_case name
    /// that is not a field, method, path segment, callee or macro name.
    fn scan_tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, tt) in tokens.iter().enumerate() {
            match tt {
                TokenTree::Group(g) => self.scan_tokens(g.stream()),
                TokenTree::Ident(ident) => {
                    let prev = i.checked_sub(1).map(|j| &tokens[j]);
                    let next = tokens.get(i + 1);
                    let after_dot_or_path = matches!(prev, Some(TokenTree::Punct(p)) if p.as_char() == '.' || p.as_char() == ':');
                    let before_call_or_path = match next {
                        Some(TokenTree::Punct(p)) => p.as_char() == '!' || p.as_char() == ':',
                        Some(TokenTree::Group(g)) => {
                            g.delimiter() == proc_macro2::Delimiter::Parenthesis
                        }
                        _ => false,
                    };
                    if !after_dot_or_path && !before_call_or_path && !is_keyword(&ident.to_string())
                    {
                        self.use_name(ident);
                    }
                }
                _ => {}
            }
        }
    }
}

fn is_keyword(s: &str) -> bool {
    matches!(
        s,
        "as" | "async"
            | "await"
            | "break"
            | "const"
            | "continue"
            | "crate"
            | "dyn"
            | "else"
            | "enum"
            | "extern"
            | "false"
            | "fn"
            | "for"
            | "if"
            | "impl"
            | "in"
            | "let"
            | "loop"
            | "match"
            | "mod"
            | "move"
            | "mut"
            | "pub"
            | "ref"
            | "return"
            | "static"
            | "struct"
            | "super"
            | "trait"
            | "true"
            | "type"
            | "unsafe"
            | "use"
            | "where"
            | "while"
    )
}

/// `vec![elem; n]`.
fn repeat_form(input: ParseStream) -> syn::Result<Vec<Expr>> {
    let elem: Expr = input.parse()?;
    input.parse::<Token![;]>()?;
    let n: Expr = input.parse()?;
    Ok(vec![elem, n])
}

/// Arguments of a format-like macro. A leading `target: expr,` (log
/// macros) is walked too, but placed last so format positions stay as written.
fn format_macro_args(input: ParseStream) -> syn::Result<Vec<Expr>> {
    let mut target = None;
    if input.peek(Ident) && input.peek2(Token![:]) && !input.peek2(Token![::]) {
        input.parse::<Ident>()?;
        input.parse::<Token![:]>()?;
        target = Some(input.parse::<Expr>()?);
        input.parse::<Token![,]>()?;
    }
    let mut args = comma_separated(input)?;
    args.extend(target);
    Ok(args)
}

fn comma_separated(input: ParseStream) -> syn::Result<Vec<Expr>> {
    Ok(Punctuated::<Expr, Token![,]>::parse_terminated(input)?
        .into_iter()
        .collect())
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
        // A one-segment callee is a fn item (or a local closure, which could
        // not be shipped anyway): not a capture.
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
        let is_named_callee = matches!(&*c.func, Expr::Path(p) if p.path.get_ident().is_some());
        if !is_named_callee {
            self.visit_expr(&c.func);
        }
        for arg in &c.args {
            self.visit_expr(arg);
        }
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
        self.escape(r.return_token.span, "return");
        visit::visit_expr_return(self, r);
    }

    fn visit_expr_try(&mut self, t: &'ast syn::ExprTry) {
        self.escape(t.question_token.span, "?");
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
        self.escape(a.await_token.span, ".await");
        visit::visit_expr_await(self, a);
    }

    fn visit_macro(&mut self, mac: &'ast Macro) {
        self.visit_macro_args(mac);
    }
}

#[cfg(test)]
mod tests;
