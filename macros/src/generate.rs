//! Code generation shared by `future!` and `foreach!`: checked options as the
//! runtime's values, and captures grouped in tuples.
//!
//! The invariant: generation works on what parsing and checking produced and
//! never re-parses or reports; every path it writes is absolute
//! (`::core`, `::std`, `::futurize::__private`), so the code means the same
//! whatever the user imported.

use crate::options::Seed;
use proc_macro2::TokenStream;
use quote::quote;
use syn::Expr;

/// Most captures in one flat tuple; more are grouped in nested tuples.
const FLAT: usize = 12;

/// Groups items into a tuple, nesting beyond `FLAT`.
pub fn tuple(items: Vec<TokenStream>) -> TokenStream {
    if items.len() <= FLAT {
        return quote!((#(#items,)*));
    }
    let groups: Vec<TokenStream> = items.chunks(FLAT).map(|c| tuple(c.to_vec())).collect();
    tuple(groups)
}

/// The runtime's `Option<String>` for a checked `label = "..."` option.
pub fn label_tokens(label: Option<&Expr>) -> TokenStream {
    match label {
        Some(l) => quote!(::core::option::Option::Some(::std::string::String::from(#l))),
        None => quote!(::core::option::Option::None),
    }
}

/// The runtime's `Option<SeedSpec>` for a checked `seed = ...` option.
pub fn seed_tokens(seed: &Option<Seed>) -> TokenStream {
    let p = quote!(::futurize::__private);
    match seed {
        None => quote!(::core::option::Option::None),
        Some(Seed::Session) => {
            quote!(::core::option::Option::Some(#p::SeedSpec::Session))
        }
        Some(Seed::Fixed(e)) => {
            quote!(::core::option::Option::Some(#p::SeedSpec::Fixed(#e)))
        }
    }
}

/// `Some(tokens)` or `None`, as tokens.
pub fn option_tokens(value: Option<&TokenStream>) -> TokenStream {
    match value {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    }
}
