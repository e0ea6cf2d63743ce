//! The variables a body captures, `self` among them.
//!
//! `self` cannot be a closure parameter, so a body that uses `self` gets it
//! as the capture `__futurize_self`: every `self` in value position, also
//! inside macro arguments and nested closures, is renamed. `self::` paths and
//! nested items are left alone.

use crate::captures::Findings;
use proc_macro2::{Ident, Span, TokenStream, TokenTree};
use quote::quote;
use syn::visit_mut::{self, VisitMut};

/// The variables a body captures: `globals` when given, else what the walk
/// found; plus `self` when the body uses it, renamed in `body` and bound by
/// the returned statement (empty when `self` is not used).
pub(crate) fn captured_variables(
    body: &mut syn::Expr,
    found: Findings,
    globals: Option<Vec<Ident>>,
) -> (Vec<Ident>, TokenStream) {
    let mut captured = globals.unwrap_or(found.captures);
    let Some(self_span) = found.self_span else {
        return (captured, TokenStream::new());
    };
    let binder = Ident::new("__futurize_self", Span::mixed_site().located_at(self_span));
    rename_self(body, &binder);
    let self_token = syn::token::SelfValue(self_span);
    let binding = quote!(let #binder = #self_token;);
    captured.push(binder);
    (captured, binding)
}

/// Renames `self` to `binder` throughout `body`.
pub(crate) fn rename_self(body: &mut syn::Expr, binder: &Ident) {
    Renamer { binder }.visit_expr_mut(body);
}

struct Renamer<'a> {
    binder: &'a Ident,
}

impl VisitMut for Renamer<'_> {
    fn visit_expr_path_mut(&mut self, p: &mut syn::ExprPath) {
        if p.qself.is_none() && p.path.is_ident("self") {
            p.path.segments[0].ident = self.binder.clone();
        }
    }

    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        mac.tokens = rename_in_tokens(mac.tokens.clone(), self.binder);
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}

    fn visit_expr_mut(&mut self, e: &mut syn::Expr) {
        visit_mut::visit_expr_mut(self, e);
    }
}

fn rename_in_tokens(tokens: TokenStream, binder: &Ident) -> TokenStream {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = Vec::with_capacity(tokens.len());
    for (i, tt) in tokens.iter().enumerate() {
        match tt {
            TokenTree::Ident(ident) if ident == "self" => {
                let is_path =
                    matches!(tokens.get(i + 1), Some(TokenTree::Punct(p)) if p.as_char() == ':');
                if is_path {
                    out.push(tt.clone());
                } else {
                    out.push(TokenTree::Ident(binder.clone()));
                }
            }
            TokenTree::Group(g) => {
                let mut renamed =
                    proc_macro2::Group::new(g.delimiter(), rename_in_tokens(g.stream(), binder));
                renamed.set_span(g.span());
                out.push(TokenTree::Group(renamed));
            }
            other => out.push(other.clone()),
        }
    }
    out.into_iter().collect()
}
