//! Code generation shared by `future!` and `foreach!`: the seed as the
//! runtime's value, and captures grouped in tuples (the per-task settings
//! are written by `settings`).
//!
//! The invariant: generation works on what parsing and checking produced and
//! never re-parses or reports; every path it writes is absolute
//! (`::core`, `::std`, `::futurize::__private`), so the code means the same
//! whatever the user imported.

use crate::options::Seed;
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::Expr;

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

/// The captures of a body, each checked at its name's span before anything
/// else uses it: `let`s that bind, per capture, the tag the probe found
/// (which types the body's closure), and the tag and the reference that
/// come back through the checks (which the runtime gets). When a check
/// fails, rustc reports it once, in futurize's words, and leaves the two
/// values' types unknown, so the code that uses them is not reported on
/// again; the closure's typing needs nothing from them.
pub(crate) struct CheckedCaptures {
    /// The `let`s.
    pub(crate) checks: Vec<TokenStream>,
    /// The tags as found: a tuple expression.
    pub(crate) tags: TokenStream,
    /// The tags through the checks: a tuple expression.
    pub(crate) sent_tags: TokenStream,
    /// The references to the variables through the checks: a tuple expression.
    pub(crate) refs: TokenStream,
}

/// Checks `captured`; `probe(p, c)` is the expression that yields `c`'s tag
/// (`p` being the path to `__private` at `c`'s span).
pub(crate) fn checked_captures(
    captured: &[Ident],
    probe: impl Fn(&TokenStream, &Ident) -> TokenStream,
) -> CheckedCaptures {
    let name = |what: &str, i: usize| format_ident!("__futurize_{}_{}", what, i);
    let mut out = CheckedCaptures {
        checks: Vec::new(),
        tags: TokenStream::new(),
        sent_tags: TokenStream::new(),
        refs: TokenStream::new(),
    };
    let (mut tags, mut sent_tags, mut refs) = (Vec::new(), Vec::new(), Vec::new());
    for (i, c) in captured.iter().enumerate() {
        let (tag, sent, sent_ref) = (name("tag", i), name("sent", i), name("ref", i));
        // The path carries the span too: rustc reports a failed bound where
        // the callee is, and the same failure twice at one span only once.
        let p = quote_spanned!(c.span()=> ::futurize::__private);
        let probed = probe(&p, c);
        let through_checks = |value: TokenStream| {
            quote_spanned!(c.span()=> {
                let __futurize_rebuilt = #tag.__futurize_rebuilt();
                #p::__checked(
                    &__futurize_rebuilt,
                    __futurize_rebuilt.__futurize_kind(),
                    #p::__not_mut(&#probed, &#c, #value),
                )
            })
        };
        let checked_tag = through_checks(probed.clone());
        let checked_ref = through_checks(quote_spanned!(c.span()=> &#c));
        out.checks.push(quote_spanned!(c.span()=>
            let #tag = #probed;
            let #sent = #checked_tag;
            let #sent_ref = #checked_ref;
        ));
        tags.push(quote!(#tag));
        sent_tags.push(quote!(#sent));
        refs.push(quote!(#sent_ref));
    }
    out.tags = tuple(tags);
    out.sent_tags = tuple(sent_tags);
    out.refs = tuple(refs);
    out
}

/// The proof that `closure` (an expression: the body's closure, or the
/// combine function) captures nothing, on which the `unsafe` of the entry
/// functions rests: it is coerced to a `fn` pointer of `arity` arguments,
/// which only a closure that captures nothing can be; `check` (the
/// runtime's `__no_capture` or `__no_capture_each`) then takes the pointer.
///
/// The coercion is a `let` with the type written rather than the argument
/// of `check`, so that when it fails rustc's error ("expected fn pointer,
/// found closure … `model` captured here") shows no function of futurize's
/// and its signature. It fails when the walk missed a variable, most often
/// a closure the body calls (`model(x)`): a callee is taken for a `fn` item,
/// and nothing a macro can write tells the two apart (docs/design.md, "A
/// closure the body calls").
pub(crate) fn no_capture_proof(
    closure: TokenStream,
    check: TokenStream,
    arity: usize,
) -> TokenStream {
    let params = vec![quote!(_); arity];
    quote!({
        let __futurize_proof: fn(#(#params),*) -> _ = #closure;
        #check(__futurize_proof);
    })
}

/// Where a body's value is written: its block's last expression, else the
/// body itself.
pub(crate) fn value_span(body: &Expr) -> proc_macro2::Span {
    if let Expr::Block(b) = body
        && let Some(syn::Stmt::Expr(last, None)) = b.block.stmts.last()
    {
        return value_span(last);
    }
    syn::spanned::Spanned::span(body)
}
