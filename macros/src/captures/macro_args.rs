//! The arguments of macros, whose grammar syn does not know.
//!
//! A macro call reaches the walk as tokens. Macros whose grammar is known
//! (the format family, `write!`, the asserts, `vec!`, `matches!`) are parsed
//! into expressions and walked like the rest of the body, their format
//! string included; futurize's own `foreach!` and `future!` are walked by
//! their grammar (`nested_macros`). The invariant: the tokens of any other macro, or of a
//! known macro that does not parse, are still scanned for names, so a
//! variable used only inside a macro is still a capture; the scan skips
//! fields, methods, path segments, callees, macro names and keywords.

use super::Walker;
use super::format_strings::implicit_names;
use proc_macro2::{Span, TokenStream, TokenTree};
use syn::parse::ParseStream;
use syn::punctuated::Punctuated;
use syn::visit::Visit;
use syn::{Expr, Ident, Macro, Pat, Token};

impl Walker {
    pub(super) fn visit_macro_args(&mut self, mac: &Macro) {
        if self.visit_nested_macro(mac) {
            return;
        }
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
        let parsed = mac.parse_body_with(|input: ParseStream<'_>| {
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
fn repeat_form(input: ParseStream<'_>) -> syn::Result<Vec<Expr>> {
    let elem: Expr = input.parse()?;
    input.parse::<Token![;]>()?;
    let n: Expr = input.parse()?;
    Ok(vec![elem, n])
}

/// Arguments of a format-like macro. A leading `target: expr,` (log
/// macros) is walked too, but placed last so format positions stay as written.
fn format_macro_args(input: ParseStream<'_>) -> syn::Result<Vec<Expr>> {
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

pub(super) fn comma_separated(input: ParseStream<'_>) -> syn::Result<Vec<Expr>> {
    Ok(Punctuated::<Expr, Token![,]>::parse_terminated(input)?
        .into_iter()
        .collect())
}
