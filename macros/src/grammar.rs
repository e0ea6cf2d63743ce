//! The grammar of `foreach!` and `future!`: their input as written, parsed
//! into bindings, body and raw options.
//!
//! One parser serves two readers: the expanders, which check and generate
//! from it, and the capture walk, which reads a `foreach!` or `future!`
//! nested in a body with it (so the nested macro's bindings, operator and
//! option names are not taken for variables). Parsing checks only the
//! shape; what an option means is `options`' business.

use crate::options::{self, RawOption};
use proc_macro2::{Span, TokenStream, TokenTree};
use syn::parse::{Parse, ParseStream, Parser};
use syn::{Expr, Ident, Pat, Token};

/// One `pat in expr` of a `foreach!`.
pub(crate) struct Binding {
    pub(crate) pat: Pat,
    pub(crate) iterable: Expr,
}

/// `foreach!(pat in expr, ... => body %op% options)` as written.
pub(crate) struct ForeachInput {
    pub(crate) bindings: Vec<Binding>,
    pub(crate) body: Expr,
    /// `%do%` rather than `%dofuture%`.
    pub(crate) in_place: bool,
    pub(crate) options: Vec<RawOption>,
}

const GRAMMAR: &str = "write `foreach!(x in xs => body %dofuture%)`, with options after the \
     operator (`%dofuture% chunk_size = 10`) and several `pat in expr` bindings zipped \
     (`a in xs, b in ys => ...`)";

fn parse_bindings(input: ParseStream<'_>) -> syn::Result<Vec<Binding>> {
    let mut bindings = Vec::new();
    loop {
        let pat = Pat::parse_single(input).map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("expected a binding such as `x in xs`: {GRAMMAR}"),
            )
        })?;
        input.parse::<Token![in]>().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("expected `in` after the binding: {GRAMMAR}"),
            )
        })?;
        let iterable: Expr = input.parse()?;
        bindings.push(Binding { pat, iterable });
        if input.parse::<Option<Token![,]>>()?.is_none() {
            break;
        }
    }
    input.parse::<Token![=>]>().map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("expected `=>` before the body: {GRAMMAR}"),
        )
    })?;
    Ok(bindings)
}

/// Finds `% op %` at the top level of the tokens after `=>`.
fn split_operator(tokens: Vec<TokenTree>) -> syn::Result<(TokenStream, Ident, TokenStream)> {
    let is_percent = |t: &TokenTree| matches!(t, TokenTree::Punct(p) if p.as_char() == '%');
    for i in 0..tokens.len().saturating_sub(2) {
        if let (true, TokenTree::Ident(op), true) = (
            is_percent(&tokens[i]),
            &tokens[i + 1],
            is_percent(&tokens[i + 2]),
        ) {
            let body: TokenStream = tokens[..i].iter().cloned().collect();
            let rest: TokenStream = tokens[i + 3..].iter().cloned().collect();
            return Ok((body, op.clone(), rest));
        }
    }
    let span = tokens.last().map_or(Span::call_site(), TokenTree::span);
    Err(syn::Error::new(
        span,
        "`foreach!` needs an operator after the body: `%dofuture%` (run under the plan) \
         or `%do%` (run here, one element after the other)",
    ))
}

impl Parse for ForeachInput {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(syn::Error::new(
                Span::call_site(),
                format!("`foreach!` is empty: {GRAMMAR}"),
            ));
        }
        let bindings = parse_bindings(input)?;
        let rest: TokenStream = input.parse()?;
        let (body_tokens, op, option_tokens) = split_operator(rest.into_iter().collect())?;
        let in_place = match op.to_string().as_str() {
            "dofuture" => false,
            "do" => true,
            other => {
                let hint = if other == "dopar" {
                    "`%dopar%` belongs to R's doParallel; here use `%dofuture%`".to_string()
                } else {
                    format!("`%{other}%` is not a foreach! operator")
                };
                return Err(syn::Error::new(
                    op.span(),
                    format!(
                        "{hint}: `%dofuture%` runs the elements under the plan, `%do%` runs them here"
                    ),
                ));
            }
        };
        if body_tokens.is_empty() {
            return Err(syn::Error::new(
                op.span(),
                "the body of `foreach!` is empty",
            ));
        }
        let body: Expr = syn::parse2(body_tokens)?;
        let options = (|input: ParseStream<'_>| {
            input.parse::<Option<Token![,]>>()?;
            options::parse_list(input)
        })
        .parse2(option_tokens)?;
        Ok(ForeachInput {
            bindings,
            body,
            in_place,
            options,
        })
    }
}

/// `future!(body, options)` as written.
pub(crate) struct FutureInput {
    pub(crate) body: Expr,
    pub(crate) options: Vec<RawOption>,
}

impl Parse for FutureInput {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(syn::Error::new(
                Span::call_site(),
                "`future!` needs an expression to evaluate: `future!(slow_sum(&xs))` \
                 or `future!({ ... }, label = \"name\")`",
            ));
        }
        let body: Expr = input.parse()?;
        let options = if input.parse::<Option<Token![,]>>()?.is_some() {
            options::parse_list(input)?
        } else if input.is_empty() {
            Vec::new()
        } else {
            return Err(input.error("expected `,` and options after the body of `future!`"));
        };
        Ok(FutureInput { body, options })
    }
}
