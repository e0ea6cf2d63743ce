//! `foreach!(x in xs, y in ys => body %dofuture% options)`: parse (with
//! `grammar`), walk, check, generate.
//!
//! The body becomes a typed, non-capturing closure of (captures, element):
//! captures as a rayon closure sees them (`&T`, or a copy of a `Copy` value),
//! elements as the iterators yield them. The runtime's map engine runs it in
//! place, on threads (borrowing, no bytes) or on worker processes (through
//! the chunk entry function).

use crate::captures;
use crate::check::{check_body, check_random};
use crate::errors::Errors;
use crate::generate::{
    CheckedCaptures, checked_captures, no_capture_proof, seed_tokens, tuple, value_span,
};
use crate::grammar::{Binding, ForeachInput};
use crate::options::{self, ForeachOptions};
use crate::self_capture::captured_variables;
use crate::settings::ErrorPolicy;
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::{Expr, Ident, Pat};

/// Most captures of one `foreach!`.
const MAX_CAPTURES: usize = 8;

/// Most bindings of one `foreach!` (the runtime zips up to this many).
const MAX_BINDINGS: usize = 8;

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let tokens = tokens_hash(&input);
    let parsed: ForeachInput = match syn::parse2(input) {
        Ok(p) => p,
        Err(e) => return e.to_compile_error(),
    };
    let errors = Errors::new();
    let opts = options::foreach_options(parsed.options, &errors);
    let mut body = parsed.body;
    let patterns: Vec<Pat> = parsed.bindings.iter().map(|b| b.pat.clone()).collect();
    let found = captures::walk_with_bound(&body, &patterns);
    check_body(&found, &errors, |ident| {
        format!(
            "a `foreach!` body runs once per element, possibly in another process, and \
             cannot assign to `{ident}`, a variable from outside. Return a value per element \
             and collect them, or accumulate with `combine = |a, b| ...`"
        )
    });
    for (ident, method) in &found.mutating_calls {
        errors.error_at(
            ident.span(),
            format!(
                "a `foreach!` body runs once per element, possibly in another process, and \
                 cannot change `{ident}`, a variable from outside (`.{method}(..)` takes it \
                 as `&mut`): the body sees it by reference or as its own copy. Return a \
                 value per element and collect them (`let {ident} = foreach!(...)?;`), or \
                 accumulate with `combine = |a, b| ...`"
            ),
        );
    }
    check_random(&found, opts.seed.is_some(), &errors);
    let (captured, self_binding) = captured_variables(&mut body, found, opts.globals.clone());
    crate::relay_prints::rewrite(&mut body);
    check_limits(&parsed.bindings, &captured, &errors);
    if let Err(e) = errors.check() {
        let e = e.to_compile_error();
        return quote!({ #e ::futurize::__private::__unreachable_result() });
    }
    generate(
        &parsed.bindings,
        &body,
        &captured,
        self_binding,
        &opts,
        (parsed.in_place, tokens),
    )
}

/// A hash of the call's tokens as written (FNV-1a): part of its cache key,
/// so that any edit of the call makes its cached values misses.
pub(crate) fn tokens_hash(input: &TokenStream) -> u64 {
    input
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// Reports more captures or bindings than the runtime takes.
fn check_limits(bindings: &[Binding], captured: &[Ident], errors: &Errors) {
    if captured.len() > MAX_CAPTURES {
        errors.error_at(
            captured[MAX_CAPTURES].span(),
            format!(
                "a `foreach!` body may capture at most {MAX_CAPTURES} variables; group them \
                 in a struct (or a tuple) and capture that"
            ),
        );
    }
    if bindings.len() > MAX_BINDINGS {
        errors.push(syn::Error::new_spanned(
            &bindings[MAX_BINDINGS].pat,
            format!(
                "a `foreach!` takes at most {MAX_BINDINGS} bindings; zip the iterables \
                 yourself (`p in a.iter().zip(b.iter())`) and bind the pairs"
            ),
        ));
    }
}

fn generate(
    bindings: &[Binding],
    body: &Expr,
    captured: &[Ident],
    self_binding: TokenStream,
    opts: &ForeachOptions,
    (in_place, tokens): (bool, u64),
) -> TokenStream {
    let p = quote!(::futurize::__private);
    let iters: Vec<Ident> = (0..bindings.len())
        .map(|i| format_ident!("__futurize_iter_{}", i))
        .collect();
    let iterables = bindings.iter().map(|b| &b.iterable);
    let (element_checks, etags, etags_sent) = element_tags(bindings, &iters);
    let pats = bindings.iter().map(|b| &b.pat);
    let CheckedCaptures {
        checks,
        tags: ctags,
        sent_tags: ctags_sent,
        refs,
    } = checked_captures(
        captured,
        |p, c| quote_spanned!(c.span()=> (&&&&#p::__wrap(&#c)).__futurize_each_tag()),
    );
    let cpats = tuple(captured.iter().map(|c| quote!(#c)).collect());
    let elements = elements_tokens(&iters);
    let (combine, combine_check) = combine_tokens(opts);
    let engine = engine(opts);
    let (entry_call, engine_call) = value_calls(&engine, refs, elements, value_span(body));
    let options = map_options_tokens(opts, in_place, tokens);
    let body_proof = no_capture_proof(quote!(__futurize_body), quote!(#p::__no_capture_each), 2);
    quote!({
        #[allow(unused_imports)]
        use #p::{
            EachViaBorrow as _, EachViaBulk as _, EachViaCopy as _, EachViaMutRef as _, EachViaRef as _,
            ElementsViaIndex as _, ElementsViaIter as _,
        };
        #(let #iters = ::core::iter::IntoIterator::into_iter(#iterables);)*
        #(#element_checks)*
        let __futurize_etags = #etags;
        let __futurize_etags_sent = #etags_sent;
        #self_binding
        #(#checks)*
        let __futurize_ctags = #ctags;
        let __futurize_ctags_sent = #ctags_sent;
        #[allow(unused_mut, unused_variables, clippy::all)]
        let __futurize_body = #p::__typed_each(
            &__futurize_ctags,
            &__futurize_etags,
            |#cpats, (#(#pats,)*)| #body,
        );
        #body_proof
        let __futurize_combine = #combine;
        #combine_check
        // SAFETY: the no-capture checks above proved that body and combine capture nothing.
        #[allow(unsafe_code)]
        let __futurize_entry = unsafe {
            #entry_call
        };
        // A `Resources` literal ends in `..Default::default()` even when it
        // names every field, so that a field the runtime adds needs no change
        // here; texts are `String::from(..)` whether they are `&str` or `String`.
        #[allow(clippy::needless_update, clippy::useless_conversion)]
        let __futurize_options = #options;
        #engine_call
    })
}

/// The tags of the elements, one per binding's iterator, each checked at
/// its iterable's span like a capture: a loop item a worker cannot rebuild
/// (`&str`, `&[f64]`) is one error there. Returns the checks, the tuple of
/// tags as found (which types the body's closure) and the tuple of tags
/// through the check (which the runtime gets).
fn element_tags(
    bindings: &[Binding],
    iters: &[Ident],
) -> (Vec<TokenStream>, TokenStream, TokenStream) {
    let (mut checks, mut tags, mut sent_tags) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (b, it)) in bindings.iter().zip(iters).enumerate() {
        let (tag, sent) = (
            format_ident!("__futurize_etag_{}", i),
            format_ident!("__futurize_esent_{}", i),
        );
        // The path carries the span too: rustc reports a failed bound where
        // the callee is, and the same failure twice at one span only once.
        let span = iterable_span(&b.iterable);
        let p = quote_spanned!(span=> ::futurize::__private);
        checks.push(quote_spanned!(span=>
            let #tag = #p::__wrap_item(&#it).__futurize_element_tag();
            let #sent = {
                let __futurize_rebuilt = #p::__element_rebuilt(&#tag);
                #p::__checked(
                    &__futurize_rebuilt,
                    __futurize_rebuilt.__futurize_kind(),
                    #p::__wrap_item(&#it).__futurize_element_tag(),
                )
            };
        ));
        tags.push(quote!(#tag));
        sent_tags.push(quote!(#sent));
    }
    (checks, tuple(tags), tuple(sent_tags))
}

/// Where an iterable's error points: past its `&`s, at the variable or the
/// expression that yields the items.
fn iterable_span(iterable: &Expr) -> proc_macro2::Span {
    match iterable {
        Expr::Reference(r) => iterable_span(&r.expr),
        other => syn::spanned::Spanned::span(other),
    }
}

/// The two calls that ask the body's value to be `SendsBack`: the chunk
/// entry and the engine. Both are spanned at the value (the whole call: a
/// call's span joins its path and its parentheses), so that a value a worker
/// cannot send back (`Result<f64, Box<dyn Error>>`) is one error there, in
/// futurize's words. The local names keep the expansion's span: with the
/// value's they would name other variables when the value comes from
/// another macro's expansion (`#[futurize]`).
fn value_calls(
    engine: &TokenStream,
    refs: TokenStream,
    elements: TokenStream,
    span: proc_macro2::Span,
) -> (TokenStream, TokenStream) {
    let p = quote_spanned!(span=> ::futurize::__private);
    let engine: TokenStream = (engine.clone().into_iter())
        .map(|mut token| {
            token.set_span(span);
            token
        })
        .collect();
    let [ctags, etags, body, combine, entry, options] = [
        "__futurize_ctags_sent",
        "__futurize_etags_sent",
        "__futurize_body",
        "__futurize_combine",
        "__futurize_entry",
        "__futurize_options",
    ]
    .map(|name| Ident::new(name, proc_macro2::Span::call_site()));
    let entry_call = quote_spanned!(span=>
        #p::__chunk_entry_of(&#ctags, &#etags, &#body, &#combine)
    );
    // Rustc points a failed bound at the argument whose type names the value
    // (the body, the combine, the entry): each argument is a block spanned
    // at the value, whose names inside keep their own span.
    let engine_call = quote_spanned!(span=>
        #[allow(unused_braces)]
        let __futurize_result = #p::#engine(
            &#ctags, &#etags, {&#body}, {#combine}, {#entry}, &#refs, #elements, #options
        );
        __futurize_result
    );
    (entry_call, engine_call)
}

/// The elements: taken by index when every binding allows it (slices,
/// ranges, vectors of plain values), else pulled from the zipped iterators.
fn elements_tokens(iters: &[Ident]) -> TokenStream {
    let p = quote!(::futurize::__private);
    quote!({
        let __futurize_iters = (#(#iters,)*);
        (&&#p::__elements_probe(&__futurize_iters))
            .__futurize_elements_kind()
            .__elements(__futurize_iters)
    })
}

/// The `combine = ...` function (or none), and its no-capture check.
fn combine_tokens(opts: &ForeachOptions) -> (TokenStream, TokenStream) {
    let p = quote!(::futurize::__private);
    match &opts.combine {
        Some(f) => (
            quote!(#p::__combine_with(&__futurize_ctags, &__futurize_etags, &__futurize_body, #f)),
            no_capture_proof(
                quote!(__futurize_combine.__function()),
                quote!(#p::__no_capture_each),
                2,
            ),
        ),
        None => (quote!(#p::__no_combine()), TokenStream::new()),
    }
}

/// The runtime function that runs the call: it combines, passes errors
/// through, or collects.
fn engine(opts: &ForeachOptions) -> TokenStream {
    match (opts.combine.is_some(), opts.errors) {
        (true, _) => quote!(__foreach_combine),
        (false, ErrorPolicy::Pass) => quote!(__foreach_pass),
        (false, _) => quote!(__foreach_collect),
    }
}

/// The runtime's `MapOptions`: the call's own options, then its settings.
fn map_options_tokens(opts: &ForeachOptions, in_place: bool, tokens: u64) -> TokenStream {
    let p = quote!(::futurize::__private);
    let (sizing, ordering) = (&opts.sizing, &opts.ordering);
    let seed = seed_tokens(&opts.seed);
    let settings = &opts.settings;
    let cache = crate::generate::cache_tokens(&opts.cache.0, tokens);
    quote!(#p::MapOptions {
        sizing: #p::Sizing::#sizing,
        ordering: #p::Ordering::#ordering,
        in_place: #in_place,
        seed: #seed,
        settings: #p::Settings {
            #settings
            ..::core::default::Default::default()
        },
        cache: #cache,
    })
}
