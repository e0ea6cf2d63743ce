//! `#[futurize]` / `#[futurize(options)]` on a function: its iterator
//! pipelines become parallel maps under the plan; everything else stays as
//! written.
//!
//! A pipeline is a method chain with three parts:
//! - a source: `xs.iter()`, `xs.into_iter()`, a range or `(range).into_iter()`,
//!   optionally shaped by `enumerate()`, `zip(..)`, `copied()` or `cloned()`;
//! - a first adapter: `map`, `filter_map` or `flat_map`;
//! - an end: `collect`, `sum`, `product`, `fold`, `reduce` or `count`.
//!
//! The first adapter becomes a `foreach!` over the source (the expensive,
//! per-element part); the rest of the chain runs on its values, in element
//! order, where the function runs. An element's error (a panic, a timeout, a
//! worker that died) or the plan's is returned through the function's
//! `Result<T, E>` when it returns one written so and `E: From<futurize::Error>`
//! (and the pipeline is not inside a closure); otherwise it is a panic of the
//! function whose message says so, with the element's index.
//!
//! `when = expr` makes that conditional: `expr` is evaluated once per call,
//! first thing in the function (so it may use the parameters, and should
//! only borrow them), and each pipeline runs in parallel when it holds and
//! as written when not. Independently of `when`, `FUTURIZE_DISABLE=1` in
//! the environment makes every plan sequential: pipelines still go through
//! `foreach!`, one element after the other in the calling thread.

use crate::errors::Errors;
use crate::futurize_checks;
use crate::locals::{Local, Locals};
use crate::options::{self, FOREACH_OPTIONS, RawOption};
use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use std::collections::HashSet;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, ExprMethodCall, ImplItemFn, ItemFn, Pat, Signature, Token, Type};

const ADAPTERS: &[&str] = &["map", "filter_map", "flat_map"];
const TERMINALS: &[&str] = &["collect", "sum", "product", "fold", "reduce", "count"];
/// Adapters a source may have before the first adapter (`ADAPTERS`), with
/// the number of arguments each takes.
const SOURCE_ADAPTERS: &[(&str, usize)] =
    &[("enumerate", 0), ("zip", 1), ("copied", 0), ("cloned", 0)];
const LOOKS_FOR: &str = "`#[futurize]` found no pipeline to run in parallel: it looks for \
    `xs.iter()`, `xs.into_iter()` or a range (optionally followed by `enumerate()`, `zip(..)`, \
    `copied()` or `cloned()`), then `map`, `filter_map` or `flat_map`, ending in `collect`, \
    `sum`, `product`, `fold`, `reduce` or `count`, such as \
    `params.iter().map(|p| run_one(p)).collect()`";
const WHEN_HINT: &str = "`when` takes a condition, evaluated at each call, such as \
    `when = xs.len() > 1000`";
/// The options of `foreach!` that `#[futurize]` does not pass on: the rest
/// of the pipeline decides how values are combined. It passes on the others.
const NOT_PASSED_ON: &[&str] = &["globals", "combine", "errors"];

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let raw = match Punctuated::<RawOption, Token![,]>::parse_terminated.parse2(attr) {
        Ok(r) => r,
        Err(e) => return with_item(e, item),
    };
    let errors = Errors::new();
    let mut seen = Vec::new();
    let mut when = None;
    let mut opts = Vec::new();
    for RawOption { name, value } in raw {
        if !options::first_time(&mut seen, &name, &errors) {
            continue;
        }
        if name == "when" {
            when = errors.push_err(when_value(value));
        } else if passed_on().any(|option| name == option) {
            opts.push(quote!(#name = #value));
        } else {
            errors.error_at(
                name.span(),
                format!(
                    "`{name}` is not an option of `#[futurize]`; it takes {} (the rest of the \
                     pipeline decides how values are combined)",
                    taken()
                ),
            );
        }
    }
    if let Err(e) = errors.check() {
        return with_item(e, item);
    }
    let mut rewriter = Rewriter {
        opts,
        when: when
            .as_ref()
            .map(|_| syn::Ident::new("__futurize_when", Span::mixed_site())),
        rewritten: 0,
        captured: HashSet::new(),
        error_type: None,
        function: String::new(),
        nested: 0,
        locals: Locals::default(),
        called_variables: Vec::new(),
    };
    let (output, sig, block) = if let Ok(mut f) = syn::parse2::<ItemFn>(item.clone()) {
        let (sig, block) = (f.sig.clone(), (*f.block).clone());
        rewriter.start(&sig);
        rewriter.rewrite_block(&mut f.block, when);
        (f.into_token_stream(), sig, block)
    } else if let Ok(mut f) = syn::parse2::<ImplItemFn>(item.clone()) {
        let (sig, block) = (f.sig.clone(), f.block.clone());
        rewriter.start(&sig);
        rewriter.rewrite_block(&mut f.block, when);
        (f.into_token_stream(), sig, block)
    } else {
        let e = syn::Error::new(
            Span::call_site(),
            "`#[futurize]` goes on a function or a method: it runs the function's iterator \
             pipelines in parallel",
        );
        return with_item(e, item);
    };
    let errors = Errors::new();
    if rewriter.rewritten == 0 {
        if !futurize_checks::near_misses(&block, LOOKS_FOR, &errors) {
            errors.error_at(Span::call_site(), LOOKS_FOR);
        }
    } else {
        futurize_checks::generic_captures(&sig, &rewriter.captured, &errors);
        futurize_checks::called_variables(&rewriter.called_variables, &sig.ident, &errors);
    }
    if let Err(e) = errors.check() {
        return with_item(e, item);
    }
    output
}

/// The error type `E` of a function that returns `Result<T, E>`, written
/// so: an element's error then travels through it (converted by `From`
/// when `E` allows it).
fn error_type(sig: &Signature) -> Option<Type> {
    let syn::ReturnType::Type(_, ty) = &sig.output else {
        return None;
    };
    let Type::Path(path) = &**ty else { return None };
    let last = path.path.segments.last()?;
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match (last.ident == "Result", args.args.len(), args.args.last()) {
        (true, 2, Some(syn::GenericArgument::Type(e))) => Some(e.clone()),
        _ => None,
    }
}

/// The options of `foreach!` that `#[futurize]` passes on to each pipeline's.
fn passed_on() -> impl Iterator<Item = &'static str> {
    FOREACH_OPTIONS
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !NOT_PASSED_ON.contains(name))
}

/// The options of `#[futurize]`: "`when`, `a`, ... and `z`".
fn taken() -> String {
    let names: Vec<String> = std::iter::once("when")
        .chain(passed_on())
        .map(|name| format!("`{name}`"))
        .collect();
    let (last, rest) = names.split_last().expect("`when` at least");
    format!("{} and {last}", rest.join(", "))
}

/// Checks `when = ...`: any expression but a literal other than `true` or
/// `false` (the compiler checks that it is a `bool`).
fn when_value(value: Expr) -> syn::Result<Expr> {
    match &value {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Bool(_),
            ..
        }) => Ok(value),
        Expr::Lit(other) => Err(syn::Error::new_spanned(other, WHEN_HINT)),
        _ => Ok(value),
    }
}

/// The error, next to the item as written (one error, not a cascade).
fn with_item(e: syn::Error, item: TokenStream) -> TokenStream {
    let e = e.to_compile_error();
    quote!(#e #item)
}

struct Rewriter {
    opts: Vec<TokenStream>,
    /// The local that holds the `when` condition, if there is one.
    when: Option<syn::Ident>,
    rewritten: usize,
    /// The variables the rewritten pipelines' bodies capture.
    captured: HashSet<String>,
    /// `E` of the function's `Result<T, E>`, if it returns one.
    error_type: Option<Type>,
    /// The function's name, for the messages.
    function: String,
    /// Depth of closures and async blocks around the current point, where a
    /// `return` would not leave the function.
    nested: usize,
    /// The function's variables at the current point (its parameters from `start`).
    locals: Locals,
    /// The function's variables that a pipeline's body calls (`model(x)`).
    called_variables: Vec<(syn::Ident, Local)>,
}

/// One link of a method chain.
struct Link {
    method: syn::Ident,
    turbofish: Option<syn::AngleBracketedGenericArguments>,
    args: Punctuated<Expr, Token![,]>,
}

/// Splits `a.b().c()` into the innermost receiver and the links, innermost first.
fn unchain(mut e: &Expr) -> (&Expr, Vec<Link>) {
    let mut links = Vec::new();
    while let Expr::MethodCall(m) = e {
        links.push(Link {
            method: m.method.clone(),
            turbofish: m.turbofish.clone(),
            args: m.args.clone(),
        });
        e = &m.receiver;
    }
    links.reverse();
    (e, links)
}

fn strip_parens(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => strip_parens(&p.expr),
        other => other,
    }
}

impl Link {
    fn is(&self, method: &str, arguments: usize) -> bool {
        self.method == method && self.args.len() == arguments && self.turbofish.is_none()
    }

    fn as_call(&self) -> TokenStream {
        let (m, t, a) = (&self.method, &self.turbofish, &self.args);
        quote!(.#m #t (#a))
    }
}

/// The source of a pipeline and the index of the link after it: `x.iter()`,
/// `x.into_iter()`, a range or `(range).into_iter()`, then any source adapters.
fn source(root: &Expr, links: &[Link]) -> Option<(TokenStream, usize)> {
    let mut source = root.to_token_stream();
    let mut next = 0;
    let starts = |l: &Link| l.is("iter", 0) || l.is("into_iter", 0);
    match strip_parens(root) {
        Expr::Range(_) => {
            if links.first().is_some_and(|l| l.is("into_iter", 0)) {
                next = 1;
            }
        }
        _ if links.first().is_some_and(starts) => next = 1,
        _ => return None,
    }
    while let Some(l) = links.get(next)
        && SOURCE_ADAPTERS.iter().any(|(m, n)| l.is(m, *n))
    {
        next += 1;
    }
    links[..next]
        .iter()
        .for_each(|l| source.extend(l.as_call()));
    Some((source, next))
}

/// A closure parameter as a `foreach!` binding: the type, if written, is
/// left to inference.
fn binding(pat: &Pat) -> Pat {
    match pat {
        Pat::Type(t) => (*t.pat).clone(),
        other => other.clone(),
    }
}

impl Rewriter {
    /// Takes in the function's signature.
    fn start(&mut self, sig: &Signature) {
        self.error_type = error_type(sig);
        self.function = sig.ident.to_string();
        self.locals = Locals::of(sig);
    }

    /// What a pipeline does with a `futurize::Error`: return it through the
    /// function's `Result` when there is one (and the pipeline is not inside
    /// a closure), else panic, saying so.
    fn on_error(&self) -> TokenStream {
        let function = &self.function;
        match (&self.error_type, self.nested) {
            (Some(e), 0) => quote!({
                #[allow(unused_imports)]
                use ::futurize::__private::{ErrorViaFrom as _, ErrorViaPanic as _};
                return ::core::result::Result::Err(
                    (&&::futurize::__private::ErrorInto::<#e>::new()).__futurize_error(e, #function),
                );
            }),
            _ => quote!(::core::panic!(
                "{} (`#[futurize]` on `{}`: the function does not return a `Result<_, E>`, \
                 so a pipeline's error is a panic; return one, with `E: From<futurize::Error>`, \
                 to get the error as a value)",
                e, #function
            )),
        }
    }

    /// Rewrites the pipelines of a function's body, and evaluates the
    /// `when` condition first thing in it.
    fn rewrite_block(&mut self, block: &mut syn::Block, when: Option<Expr>) {
        self.visit_block_mut(block);
        if let (Some(local), Some(condition)) = (&self.when, when) {
            block
                .stmts
                .insert(0, syn::parse_quote!(let #local: bool = #condition;));
        }
    }

    /// The parallel form of a pipeline, if `call` is one; with `when`, the
    /// parallel form when the condition holds and `call` as written when not.
    fn rewrite(&mut self, call: &ExprMethodCall) -> Option<Expr> {
        let parallel = self.parallel(call)?;
        Some(match &self.when {
            Some(when) => syn::parse_quote!(if #when { #parallel } else { #call }),
            None => parallel,
        })
    }

    /// The parallel form of a pipeline, if `call` is one.
    fn parallel(&mut self, call: &ExprMethodCall) -> Option<Expr> {
        let whole = Expr::MethodCall(call.clone());
        let (root, links) = unchain(&whole);
        let terminal = links.last()?;
        if !TERMINALS.contains(&terminal.method.to_string().as_str()) {
            return None;
        }
        let (source, first_adapter) = source(root, &links)?;
        let adapter = links.get(first_adapter)?;
        let kind = adapter.method.to_string();
        if !ADAPTERS.contains(&kind.as_str())
            || adapter.args.len() != 1
            || first_adapter + 1 >= links.len()
        {
            return None;
        }
        let (pat, body) = match &adapter.args[0] {
            Expr::Closure(c) if c.inputs.len() == 1 => (binding(&c.inputs[0]), (*c.body).clone()),
            Expr::Path(f) => {
                let x = syn::Ident::new("__futurize_element", Span::mixed_site());
                let pat: Pat = syn::parse_quote!(#x);
                (pat, syn::parse_quote!(#f(#x)))
            }
            _ => return None,
        };
        let per_element = match kind.as_str() {
            // Collected on the worker: what travels back must be a value.
            "flat_map" => {
                quote!(::core::iter::IntoIterator::into_iter(#body).collect::<::std::vec::Vec<_>>())
            }
            _ => body.to_token_stream(),
        };
        let after = match kind.as_str() {
            "map" => quote!(),
            _ => quote!(.flatten()),
        };
        let rest = links[first_adapter + 1..].iter().map(Link::as_call);
        let found = crate::captures::walk_with_bound(&body, std::slice::from_ref(&pat));
        self.captured
            .extend(found.captures.iter().map(|c| c.to_string()));
        let locals = &self.locals;
        let called = (found.callees.into_iter()).filter_map(|c| match locals.get(&c.to_string()) {
            Some(Local::Item) | None => None,
            Some(local) => Some((c, local)),
        });
        self.called_variables.extend(called);
        let on_error = self.on_error();
        let opts = &self.opts;
        self.rewritten += 1;
        Some(syn::parse_quote!({
            let __futurize_values: ::std::vec::Vec<_> =
                match ::futurize::foreach!(#pat in #source => #per_element %dofuture% #(#opts),*) {
                    ::core::result::Result::Ok(values) => values,
                    ::core::result::Result::Err(e) => #on_error,
                };
            ::core::iter::IntoIterator::into_iter(__futurize_values) #after #(#rest)*
        }))
    }
}

impl VisitMut for Rewriter {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        if let Expr::MethodCall(call) = e
            && let Some(parallel) = self.rewrite(call)
        {
            *e = parallel;
            return;
        }
        visit_mut::visit_expr_mut(self, e);
    }

    /// Items nested in the function are left as written.
    fn visit_item_mut(&mut self, _: &mut syn::Item) {}

    // The scopes of the function's variables, for `called_variables`.
    fn visit_block_mut(&mut self, b: &mut syn::Block) {
        self.locals.open_block(&b.stmts);
        visit_mut::visit_block_mut(self, b);
        self.locals.close();
    }

    fn visit_local_mut(&mut self, l: &mut syn::Local) {
        if let Some(init) = &mut l.init {
            self.visit_expr_mut(&mut init.expr);
            if let Some((_, diverge)) = &mut init.diverge {
                self.visit_expr_mut(diverge);
            }
        }
        self.locals.bind(&l.pat);
    }

    fn visit_expr_let_mut(&mut self, e: &mut syn::ExprLet) {
        self.visit_expr_mut(&mut e.expr);
        self.locals.bind(&e.pat);
    }

    fn visit_expr_if_mut(&mut self, e: &mut syn::ExprIf) {
        self.locals.open();
        self.visit_expr_mut(&mut e.cond);
        self.visit_block_mut(&mut e.then_branch);
        self.locals.close();
        if let Some((_, else_branch)) = &mut e.else_branch {
            self.visit_expr_mut(else_branch);
        }
    }

    fn visit_expr_while_mut(&mut self, e: &mut syn::ExprWhile) {
        self.locals.open();
        self.visit_expr_mut(&mut e.cond);
        self.visit_block_mut(&mut e.body);
        self.locals.close();
    }

    fn visit_expr_for_loop_mut(&mut self, e: &mut syn::ExprForLoop) {
        self.visit_expr_mut(&mut e.expr);
        self.locals.open();
        self.locals.bind(&e.pat);
        self.visit_block_mut(&mut e.body);
        self.locals.close();
    }

    fn visit_arm_mut(&mut self, arm: &mut syn::Arm) {
        self.locals.open();
        self.locals.bind(&arm.pat);
        if let Some((_, guard)) = &mut arm.guard {
            self.visit_expr_mut(guard);
        }
        self.visit_expr_mut(&mut arm.body);
        self.locals.close();
    }

    fn visit_expr_closure_mut(&mut self, c: &mut syn::ExprClosure) {
        self.nested += 1;
        self.locals.open();
        for input in &c.inputs {
            self.locals.bind(input);
        }
        self.visit_expr_mut(&mut c.body);
        self.locals.close();
        self.nested -= 1;
    }

    fn visit_expr_async_mut(&mut self, a: &mut syn::ExprAsync) {
        self.nested += 1;
        visit_mut::visit_expr_async_mut(self, a);
        self.nested -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::expand;
    use quote::quote;

    /// The `foreach!` iterables the expansion of `body` runs over.
    fn sources(attr: proc_macro2::TokenStream, body: proc_macro2::TokenStream) -> Vec<String> {
        let out = expand(
            attr,
            quote!(fn f(xs: &[f64], ys: &[f64], n: u64) -> f64 { #body }),
        );
        let text = out.to_string();
        assert!(!text.contains("compile_error"), "{text}");
        text.split(":: futurize :: foreach !")
            .skip(1)
            .map(|s| {
                let from = s.find(" in ").expect("a binding") + 4;
                let to = s.find(" =>").expect("a body");
                s[from..to].to_string()
            })
            .collect()
    }

    #[test]
    fn the_common_shapes_are_pipelines() {
        let cases = [
            (
                quote!((0..n).into_iter().map(|i| i as f64).sum()),
                "(0 .. n) . into_iter ()",
            ),
            (quote!((0..n).map(|i| i as f64).sum()), "(0 .. n)"),
            (
                quote!(xs.iter().enumerate().map(|(i, x)| i as f64 * x).sum()),
                "xs . iter () . enumerate ()",
            ),
            (
                quote!(xs.iter().zip(ys.iter()).map(|(x, y)| x * y).sum()),
                "xs . iter () . zip (ys . iter ())",
            ),
            (
                quote!(
                    xs.iter()
                        .copied()
                        .enumerate()
                        .map(|(i, x): (usize, f64)| x)
                        .sum()
                ),
                "xs . iter () . copied () . enumerate ()",
            ),
        ];
        for (body, source) in cases {
            assert_eq!(sources(quote!(), body), vec![source.to_string()]);
        }
    }

    #[test]
    fn other_chains_are_left_as_written() {
        for body in [
            quote!(xs.iter().rev().map(|x| x * 2.0).sum()),
            quote!(xs.iter().enumerate().count() as f64),
            quote!((0..n).into_iter().sum::<u64>() as f64),
        ] {
            let out = expand(quote!(), quote!(fn f(xs: &[f64], n: u64) -> f64 { #body }));
            assert!(out.to_string().contains("found no pipeline"), "{out}");
        }
    }

    #[test]
    fn when_keeps_the_pipeline_as_written_beside_the_parallel_form() {
        let out = expand(
            quote!(when = xs.len() > 100, chunk_size = 2),
            quote!(
                fn f(xs: &[f64]) -> f64 {
                    xs.iter().map(|x| x * 2.0).sum()
                }
            ),
        )
        .to_string();
        assert!(
            out.contains("let __futurize_when : bool = xs . len () > 100 ;"),
            "{out}"
        );
        assert!(out.contains("if __futurize_when {"), "{out}");
        assert!(
            out.contains("else { xs . iter () . map (| x | x * 2.0) . sum () }"),
            "{out}"
        );
        assert!(out.contains("% dofuture % chunk_size = 2"), "{out}");
        assert!(!out.contains("when = "), "`when` is not passed on: {out}");
    }
}
