//! `print!`, `println!`, `eprint!`, `eprintln!` and `dbg!` in a body write to the
//! element's capture when the body runs in the leader's process: they are
//! renamed to futurize's relaying versions, which take the same arguments.
//! Everywhere in the body, nested closures and items included; not inside
//! other macros' arguments, whose grammar is unknown.

use proc_macro2::Span;
use syn::visit_mut::{self, VisitMut};

/// Renames the print macros of `body`.
pub(crate) fn rewrite(body: &mut syn::Expr) {
    Renamer.visit_expr_mut(body);
}

struct Renamer;

fn relaying_version(path: &syn::Path) -> Option<&'static str> {
    let names: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    let name = match names.as_slice() {
        [name] => name,
        [std, name] if std == "std" => name,
        _ => return None,
    };
    match name.as_str() {
        "print" => Some("__relay_print"),
        "println" => Some("__relay_println"),
        "eprint" => Some("__relay_eprint"),
        "eprintln" => Some("__relay_eprintln"),
        "dbg" => Some("__relay_dbg"),
        _ => None,
    }
}

impl VisitMut for Renamer {
    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        if let Some(version) = relaying_version(&mac.path) {
            let span = mac
                .path
                .segments
                .last()
                .map_or(Span::call_site(), |s| s.ident.span());
            let version = syn::Ident::new(version, span);
            mac.path = syn::parse_quote_spanned!(span=> ::futurize::__private::#version);
        }
        visit_mut::visit_macro_mut(self, mac);
    }
}
