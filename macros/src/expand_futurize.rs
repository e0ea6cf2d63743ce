//! `#[futurize]` / `#[futurize(options)]` on a function: its iterator
//! pipelines become parallel maps under the plan; everything else stays as
//! written.
//!
//! A pipeline is a method chain whose source is `x.iter()`, `x.into_iter()`
//! or a range, whose first adapter is `map`, `filter_map` or `flat_map`, and
//! which ends in `collect`, `sum`, `product`, `fold`, `reduce` or `count`.
//! The first adapter becomes a `foreach!` (the expensive, per-element part);
//! the rest of the chain runs on its values, in element order, where the
//! function runs. A panic in an element is a panic of the function, as it
//! was before, with the element's index in the message.

use crate::options::{self, RawOption};
use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, ExprMethodCall, ImplItemFn, ItemFn, Pat, Token};

const ADAPTERS: &[&str] = &["map", "filter_map", "flat_map"];
const TERMINALS: &[&str] = &["collect", "sum", "product", "fold", "reduce", "count"];
const LOOKS_FOR: &str = "`#[futurize]` found no pipeline to run in parallel: it looks for \
    `xs.iter()`, `xs.into_iter()` or a range followed by `map`, `filter_map` or `flat_map` \
    and ending in `collect`, `sum`, `product`, `fold`, `reduce` or `count`, such as \
    `params.iter().map(|p| run_one(p)).collect()`";
const PASSED_ON: &[&str] = &[
    "chunk_size",
    "scheduling",
    "ordering",
    "label",
    "seed",
    "timeout",
    "retries",
    "progress",
    "stdout",
    "resources",
];

pub fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let raw = match Punctuated::<RawOption, Token![,]>::parse_terminated.parse2(attr) {
        Ok(r) => r,
        Err(e) => return with_item(e, item),
    };
    let mut errors = Vec::new();
    for o in &raw {
        let name = o.name.to_string();
        if !PASSED_ON.contains(&name.as_str()) {
            errors.push(syn::Error::new(
                o.name.span(),
                format!(
                    "`{name}` is not an option of `#[futurize]`; it takes `chunk_size`, \
                     `scheduling`, `ordering`, `label`, `seed`, `timeout`, `retries`, \
                     `progress`, `stdout` and `resources` (the rest of the pipeline decides how values \
                     are combined)"
                ),
            ));
        }
    }
    if let Some(e) = options::combine(errors) {
        return with_item(e, item);
    }
    let opts: Vec<TokenStream> = raw
        .iter()
        .map(|o| {
            let (n, v) = (&o.name, &o.value);
            quote!(#n = #v)
        })
        .collect();
    let mut rewriter = Rewriter { opts, rewritten: 0 };
    let output = if let Ok(mut f) = syn::parse2::<ItemFn>(item.clone()) {
        rewriter.visit_block_mut(&mut f.block);
        f.into_token_stream()
    } else if let Ok(mut f) = syn::parse2::<ImplItemFn>(item.clone()) {
        rewriter.visit_block_mut(&mut f.block);
        f.into_token_stream()
    } else {
        let e = syn::Error::new(
            Span::call_site(),
            "`#[futurize]` goes on a function or a method: it runs the function's iterator \
             pipelines in parallel",
        );
        return with_item(e, item);
    };
    if rewriter.rewritten == 0 {
        return with_item(syn::Error::new(Span::call_site(), LOOKS_FOR), output);
    }
    output
}

/// The error, next to the item as written (one error, not a cascade).
fn with_item(e: syn::Error, item: TokenStream) -> TokenStream {
    let e = e.to_compile_error();
    quote!(#e #item)
}

struct Rewriter {
    opts: Vec<TokenStream>,
    rewritten: usize,
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

impl Rewriter {
    /// The parallel form of a pipeline, if `call` is one.
    fn rewrite(&mut self, call: &ExprMethodCall) -> Option<Expr> {
        let whole = Expr::MethodCall(call.clone());
        let (root, links) = unchain(&whole);
        let terminal = links.last()?;
        if !TERMINALS.contains(&terminal.method.to_string().as_str()) {
            return None;
        }
        // The source: `x.iter()` / `x.into_iter()`, or a range.
        let (source, first_adapter) = match strip_parens(root) {
            Expr::Range(_) => (root.to_token_stream(), 0),
            _ => {
                let m = links.first()?.method.to_string();
                if m != "iter" && m != "into_iter" || !links[0].args.is_empty() {
                    return None;
                }
                let Link { method, .. } = &links[0];
                (quote!(#root.#method()), 1)
            }
        };
        let adapter = links.get(first_adapter)?;
        let kind = adapter.method.to_string();
        if !ADAPTERS.contains(&kind.as_str())
            || adapter.args.len() != 1
            || first_adapter + 1 >= links.len()
        {
            return None;
        }
        let (pat, body) = match &adapter.args[0] {
            Expr::Closure(c) if c.inputs.len() == 1 => (c.inputs[0].clone(), (*c.body).clone()),
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
        let rest = links[first_adapter + 1..].iter().map(|l| {
            let (m, t, a) = (&l.method, &l.turbofish, &l.args);
            quote!(.#m #t (#a))
        });
        let opts = &self.opts;
        self.rewritten += 1;
        Some(syn::parse_quote!({
            let __futurize_values: ::std::vec::Vec<_> =
                match ::futurize::foreach!(#pat in #source => #per_element %dofuture% #(#opts),*) {
                    ::core::result::Result::Ok(values) => values,
                    ::core::result::Result::Err(e) => ::core::panic!("{}", e),
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
}
