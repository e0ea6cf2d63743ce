//! Code generation shared by `future!` and `foreach!`: the seed as the
//! runtime's value, and captures grouped in tuples (the per-task settings
//! are written by `settings`).
//!
//! The invariant: generation works on what parsing and checking produced and
//! never re-parses or reports; every path it writes is absolute
//! (`::core`, `::std`, `::futurize::__private`), so the code means the same
//! whatever the user imported.

use crate::options::Seed;
use proc_macro2::TokenStream;
use quote::quote;

/// Most captures in one flat tuple; more are grouped in nested tuples.
const FLAT: usize = 12;

/// Groups items into a tuple, nesting beyond `FLAT`.
pub(crate) fn tuple(items: Vec<TokenStream>) -> TokenStream {
    if items.len() <= FLAT {
        return quote!((#(#items,)*));
    }
    let groups: Vec<TokenStream> = items.chunks(FLAT).map(|c| tuple(c.to_vec())).collect();
    tuple(groups)
}

/// The runtime's `Option<SeedSpec>` for a checked `seed = ...` option.
pub(crate) fn seed_tokens(seed: &Option<Seed>) -> TokenStream {
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

/// The runtime's `Option<CacheSpec>` of a call: where it is (for its cache
/// key), the hash of its `tokens`, and what `cache = ...` asked (`mode`, a
/// `CacheMode` variant).
pub(crate) fn cache_tokens(mode: &TokenStream, tokens: u64) -> TokenStream {
    let p = quote!(::futurize::__private);
    quote!(::core::option::Option::Some(#p::CacheSpec {
        site: &#p::CallSite {
            crate_name: ::core::env!("CARGO_PKG_NAME"),
            module: ::core::module_path!(),
            file: ::core::file!(),
            line: ::core::line!(),
            tokens: #tokens,
        },
        asked: #p::CacheMode::#mode,
    }))
}
