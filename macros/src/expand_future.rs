//! `future!(body, options)`: parse (with `grammar`), walk, check, generate.
//!
//! The generated block (see docs/design.md "How work reaches a worker"):
//! a zero-size tag per capture chosen from its inferred type, the body as a
//! typed closure over exactly those captures, the compile-time proof that it
//! captures nothing else, the entry function, and `Future::__new` with the
//! encoded captures.

use crate::captures;
use crate::check::{check_body, check_random};
use crate::errors::Errors;
use crate::generate::{
    CheckedCaptures, checked_captures, no_capture_proof, seed_tokens, tuple, value_span,
};
use crate::grammar::FutureInput;
use crate::options::{self, FutureOptions};
use crate::self_capture::captured_variables;
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{Expr, Ident};

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let tokens = crate::expand_foreach::tokens_hash(&input);
    let parsed: FutureInput = match syn::parse2(input) {
        Ok(p) => p,
        Err(e) => return e.to_compile_error(),
    };
    let errors = Errors::new();
    let opts = options::future_options(parsed.options, &errors);
    let mut body = parsed.body;
    let found = captures::walk(&body);
    check_body(&found, &errors, |ident| {
        format!(
            "a future cannot assign to `{ident}`, a variable from outside: it works on \
             its own copy and changes are never written back. Return the new value \
             instead: `let {ident} = future!({{ ... }}).value()?;`"
        )
    });
    check_random(&found, opts.seed.is_some(), &errors);
    if let Err(e) = errors.check() {
        let e = e.to_compile_error();
        // One precise error, not a cascade: the call still has a `Future` type.
        return quote!({ #e ::futurize::__private::__unreachable_future() });
    }
    let (captured, self_binding) = captured_variables(&mut body, found, opts.globals.clone());
    crate::relay_prints::rewrite(&mut body);
    generate(&body, &captured, self_binding, &opts, tokens)
}

fn generate(
    body: &Expr,
    captured: &[Ident],
    self_binding: TokenStream,
    opts: &FutureOptions,
    tokens: u64,
) -> TokenStream {
    let p = quote!(::futurize::__private);
    let CheckedCaptures {
        checks,
        tags,
        sent_tags,
        refs,
    } = checked_captures(
        captured,
        |p, c| quote_spanned!(c.span()=> (&&&#p::__wrap(&#c)).__futurize_tag()),
    );
    let pats = tuple(captured.iter().map(|c| quote!(mut #c)).collect());
    let options = future_options_tokens(opts, tokens);
    let (entry_call, future_call) = value_calls(body);
    let body_proof = no_capture_proof(quote!(__futurize_body), quote!(#p::__no_capture), 1);
    quote!({
        #[allow(unused_imports)]
        use #p::{ViaMutRef as _, ViaOwned as _, ViaRef as _};
        #self_binding
        #(#checks)*
        let __futurize_tags = #tags;
        let __futurize_sent_tags = #sent_tags;
        #[allow(unused_mut, unused_variables, clippy::all)]
        let __futurize_body = #p::__typed(&__futurize_tags, |#pats| #body);
        #body_proof
        // A `Resources` literal ends in `..Default::default()` even when it
        // names every field, so that a field the runtime adds needs no change
        // here; texts are `String::from(..)` whether they are `&str` or `String`.
        #[allow(clippy::needless_update, clippy::useless_conversion)]
        let __futurize_options = #options;
        let __futurize_captures =
            #p::__encode_captures_of(&__futurize_sent_tags, #refs, __futurize_options.settings.label.as_deref());
        // SAFETY: the proof above (the body coerced to a `fn` pointer) shows
        // that the body captures nothing.
        #[allow(unsafe_code, unused_braces)]
        let __futurize_entry = unsafe { #entry_call };
        #future_call
    })
}

/// The two calls that ask the body's value to be `SendsBack`, the entry
/// and the future, spanned at the value (the whole call, and the argument
/// whose type names the value, which is where rustc points), so that a
/// value a worker cannot send back is one error there. The local names keep
/// the expansion's span.
fn value_calls(body: &Expr) -> (TokenStream, TokenStream) {
    let span = value_span(body);
    let p = quote_spanned!(span=> ::futurize::__private);
    let [tags, body, entry, captures, options] = [
        "__futurize_sent_tags",
        "__futurize_body",
        "__futurize_entry",
        "__futurize_captures",
        "__futurize_options",
    ]
    .map(|name| Ident::new(name, proc_macro2::Span::call_site()));
    let entry_call = quote_spanned!(span=> #p::__entry_of(&#tags, {&#body}));
    let future_call = quote_spanned!(span=>
        #[allow(unused_braces)]
        let __futurize_future = #p::__future_of({#entry}, #captures, #options);
        __futurize_future
    );
    (entry_call, future_call)
}

/// The runtime's `FutureOptions`: the call's own options, then its settings.
fn future_options_tokens(opts: &FutureOptions, tokens: u64) -> TokenStream {
    let p = quote!(::futurize::__private);
    let lazy = opts.lazy;
    let seed = seed_tokens(&opts.seed);
    let settings = &opts.settings;
    let cache = crate::generate::cache_tokens(&opts.cache, tokens);
    quote!(#p::FutureOptions {
        lazy: #lazy,
        seed: #seed,
        settings: #p::Settings {
            #settings
            ..::core::default::Default::default()
        },
        cache: #cache,
    })
}
