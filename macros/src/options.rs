//! Options written after a body: `label = "..", lazy = true, globals = [a, b]`.
//!
//! Parsing only collects `name = value` pairs; each macro then checks them
//! against the options it knows, so an unknown option or a malformed value is
//! a compile error pointing at it, listing what would be accepted. The
//! per-task settings among them (`label`, `timeout`, ...) are checked by
//! `settings`; the options here shape the call itself: what it captures,
//! its seed, how a `foreach!` cuts, orders and combines its elements.

use crate::errors::Errors;
use crate::settings::{ErrorPolicy, Settings, bool_value};
use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Ident, Lit, Token};

/// One `name = value` pair as written.
pub(crate) struct RawOption {
    pub(crate) name: Ident,
    pub(crate) value: Expr,
}

impl Parse for RawOption {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let name: Ident = input.parse().map_err(|e| {
            syn::Error::new(e.span(), "expected an option such as `label = \"name\"`")
        })?;
        let eq: Option<Token![=]> = input.parse()?;
        if eq.is_none() {
            return Err(syn::Error::new(
                name.span(),
                format!("option `{name}` needs a value: write `{name} = ...`"),
            ));
        }
        let value: Expr = input.parse()?;
        Ok(RawOption { name, value })
    }
}

/// Parses `, name = value, ...` after a body (the leading comma already eaten).
pub(crate) fn parse_list(input: ParseStream<'_>) -> syn::Result<Vec<RawOption>> {
    let list: Punctuated<RawOption, Token![,]> = Punctuated::parse_terminated(input)?;
    Ok(list.into_iter().collect())
}

/// The options of `future!`, as an error lists them: name, how it is written.
const FUTURE_OPTIONS: &[(&str, &str)] = &[
    ("label", "`label = \"name\"`"),
    ("lazy", "`lazy = true`"),
    ("globals", "`globals = [a, b]`"),
    ("seed", "`seed = true | <u64>`"),
    ("timeout", "`timeout = \"10m\"`"),
    ("retries", "`retries = n`"),
    ("escalate", "`escalate = (mem = 2.0, time = 1.5) | false`"),
    ("stdout", "`stdout = false`"),
    ("resources", "`resources = (cpus = 4, mem = \"2G\", ...)`"),
    ("cache", "`cache = true | \"build\"`"),
];

/// The options of `foreach!`, as an error lists them: name, how it is written.
pub(crate) const FOREACH_OPTIONS: &[(&str, &str)] = &[
    ("chunk_size", "`chunk_size = n`"),
    ("scheduling", "`scheduling = s`"),
    (
        "ordering",
        "`ordering = \"forward\" | \"reverse\" | \"random\"`",
    ),
    ("globals", "`globals = [a, b]`"),
    ("combine", "`combine = |a, b| ...`"),
    ("errors", "`errors = \"stop\" | \"remove\" | \"pass\"`"),
    ("label", "`label = \"name\"`"),
    ("seed", "`seed = true | <u64>`"),
    ("timeout", "`timeout = \"10m\"`"),
    ("retries", "`retries = n`"),
    ("escalate", "`escalate = (mem = 2.0, time = 1.5) | false`"),
    ("progress", "`progress = true`"),
    ("stdout", "`stdout = false`"),
    ("resources", "`resources = (cpus = 4, mem = \"2G\", ...)`"),
    ("cache", "`cache = true | \"build\"`"),
];

/// Options of the design that later versions of `foreach!` add; named so
/// the error can say so.
const NOT_YET: &[&str] = &["lazy"];

/// Options of `future!`, checked.
pub(crate) struct FutureOptions {
    pub(crate) lazy: bool,
    pub(crate) globals: Option<Vec<Ident>>,
    pub(crate) seed: Option<Seed>,
    pub(crate) settings: Settings,
    /// A `CacheMode` variant for the runtime.
    pub(crate) cache: TokenStream,
}

/// Options of `foreach!`, checked.
pub(crate) struct ForeachOptions {
    pub(crate) globals: Option<Vec<Ident>>,
    pub(crate) combine: Option<Expr>,
    /// A `Sizing` variant for the runtime.
    pub(crate) sizing: TokenStream,
    /// An `Ordering` variant for the runtime.
    pub(crate) ordering: TokenStream,
    /// Also among the settings; it picks the engine too.
    pub(crate) errors: ErrorPolicy,
    pub(crate) seed: Option<Seed>,
    pub(crate) settings: Settings,
    /// A `CacheMode` variant for the runtime, and the option's name when
    /// given (for an error).
    pub(crate) cache: (TokenStream, Option<Ident>),
}

/// `seed = true` or `seed = <u64 expression>`.
pub(crate) enum Seed {
    Session,
    Fixed(Expr),
}

/// Checks the options of `future!`, collecting every error.
pub(crate) fn future_options(raw: Vec<RawOption>, errors: &Errors) -> FutureOptions {
    let mut opts = FutureOptions {
        lazy: false,
        globals: None,
        seed: None,
        settings: Settings::of_future(),
        cache: quote!(Unasked),
    };
    let mut seen = Vec::new();
    for RawOption { name, value } in raw {
        if !first_time(&mut seen, &name, errors) {
            continue;
        }
        let checked = match name.to_string().as_str() {
            "lazy" => bool_value(&name, &value).map(|lazy| opts.lazy = lazy),
            "globals" => globals_value(&value).map(|globals| opts.globals = Some(globals)),
            "seed" => seed_value(value).map(|seed| opts.seed = seed),
            "cache" => cache_value(&value).map(|mode| opts.cache = mode),
            _ => opts
                .settings
                .check(&name, value)
                .unwrap_or_else(|| Err(unknown_option(&name, "future!", FUTURE_OPTIONS))),
        };
        errors.push_err(checked);
    }
    opts
}

/// Checks the options of `foreach!`, collecting every error.
pub(crate) fn foreach_options(raw: Vec<RawOption>, errors: &Errors) -> ForeachOptions {
    let mut opts = ForeachOptions {
        globals: None,
        combine: None,
        sizing: quote!(Adaptive),
        ordering: quote!(Forward),
        errors: ErrorPolicy::Stop,
        seed: None,
        settings: Settings::of_foreach(),
        cache: (quote!(Unasked), None),
    };
    let mut seen = Vec::new();
    // The option that set the chunk sizes, of `chunk_size` and `scheduling`.
    let mut sizing_from: Option<Ident> = None;
    for RawOption { name, value } in raw {
        if !first_time(&mut seen, &name, errors) {
            continue;
        }
        errors.push_err(opts.check(name, value, &mut sizing_from));
    }
    if let (Some(_), Some(cache)) = (&opts.combine, &opts.cache.1)
        && opts.cache.0.to_string() != "Off"
    {
        errors.error_at(
            cache.span(),
            "`cache` keeps each element's value, and `combine` folds the values inside each \
             chunk: collect the values with `cache = true` and fold them afterwards \
             (`.into_iter().fold(..)`)",
        );
    }
    if opts.combine.is_some() && opts.errors == ErrorPolicy::Pass {
        errors.error_at(
            Span::call_site(),
            "`combine` and `errors = \"pass\"` cannot go together: a combined value has no per-element results",
        );
    }
    opts
}

impl ForeachOptions {
    /// Checks one option of `foreach!` and notes it.
    fn check(
        &mut self,
        name: Ident,
        value: Expr,
        sizing_from: &mut Option<Ident>,
    ) -> syn::Result<()> {
        match name.to_string().as_str() {
            "globals" => self.globals = Some(globals_value(&value)?),
            "combine" => self.combine = Some(value),
            "seed" => self.seed = seed_value(value)?,
            "chunk_size" | "scheduling" => {
                if let Some(other) = sizing_from {
                    return Err(syn::Error::new(
                        name.span(),
                        format!("`{name}` and `{other}` both set chunk sizes: give one of them"),
                    ));
                }
                self.sizing = sizing_value(&name, &value)?;
                *sizing_from = Some(name);
            }
            "ordering" => self.ordering = ordering_value(&value)?,
            "cache" => self.cache = (cache_value(&value)?, Some(name)),
            "errors" => {
                self.errors = error_policy(&value)?;
                self.settings.set("errors", self.errors.tokens());
            }
            other if NOT_YET.contains(&other) => {
                return Err(syn::Error::new(
                    name.span(),
                    format!(
                        "option `{other}` is not supported by this version of `foreach!` yet; the options are {}",
                        listed(FOREACH_OPTIONS)
                    ),
                ));
            }
            _ => {
                return self
                    .settings
                    .check(&name, value)
                    .unwrap_or_else(|| Err(unknown_option(&name, "foreach!", FOREACH_OPTIONS)));
            }
        }
        Ok(())
    }
}

/// Notes an option's name; false (with an error) when it was given before.
pub(crate) fn first_time(seen: &mut Vec<String>, name: &Ident, errors: &Errors) -> bool {
    let key = name.to_string();
    if seen.contains(&key) {
        errors.error_at(name.span(), format!("option `{key}` is given twice"));
        return false;
    }
    seen.push(key);
    true
}

fn unknown_option(name: &Ident, of: &str, options: &[(&str, &str)]) -> syn::Error {
    syn::Error::new(
        name.span(),
        format!(
            "unknown option `{name}` for `{of}`; the options are {}",
            listed(options)
        ),
    )
}

/// The options as written, one after the other.
fn listed(options: &[(&str, &str)]) -> String {
    let written: Vec<&str> = options.iter().map(|(_, written)| *written).collect();
    written.join(", ")
}

/// Checks `cache = ...`: `true`, `false` or `"build"`; the runtime's
/// `CacheMode` variant.
fn cache_value(value: &Expr) -> syn::Result<TokenStream> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(if b.value { quote!(On) } else { quote!(Off) }),
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) if s.value() == "build" => Ok(quote!(Build)),
        _ => Err(syn::Error::new_spanned(
            value,
            "`cache` takes `true`, `false` or `\"build\"` (any change of the program is then a miss)",
        )),
    }
}

/// Checks `seed = ...`: `true`, `false` (no seed) or a `u64` expression.
fn seed_value(value: Expr) -> syn::Result<Option<Seed>> {
    match &value {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(b.value.then_some(Seed::Session)),
        Expr::Lit(ExprLit {
            lit: Lit::Int(_), ..
        }) => Ok(Some(Seed::Fixed(value))),
        Expr::Lit(other) => Err(syn::Error::new_spanned(
            other,
            "`seed` takes `true` (the session's streams) or a `u64` seed such as `seed = 42`",
        )),
        _ => Ok(Some(Seed::Fixed(value))),
    }
}

fn globals_value(value: &Expr) -> syn::Result<Vec<Ident>> {
    let hint = "`globals` takes a list of variable names, such as `globals = [xs, cfg]`";
    let Expr::Array(array) = value else {
        return Err(syn::Error::new_spanned(value, hint));
    };
    array
        .elems
        .iter()
        .map(|e| match e {
            Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                Ok(p.path.get_ident().cloned().expect("checked"))
            }
            other => Err(syn::Error::new_spanned(other, hint)),
        })
        .collect()
}

/// `chunk_size = n` or `scheduling = s` (`name`), as a `Sizing` variant.
fn sizing_value(name: &Ident, value: &Expr) -> syn::Result<TokenStream> {
    if let Expr::Lit(ExprLit { lit, .. }) = value {
        let bad = match lit {
            Lit::Int(i) => i.base10_parse::<u64>().map(|n| n == 0).unwrap_or(true),
            Lit::Float(f) => f.base10_parse::<f64>().map(|x| x <= 0.0).unwrap_or(true),
            _ => true,
        };
        if bad {
            return Err(syn::Error::new_spanned(
                lit,
                format!("`{name}` takes a number greater than 0"),
            ));
        }
    }
    Ok(if name == "chunk_size" {
        quote!(Fixed(#value))
    } else {
        quote!(PerWorker(#value as f64))
    })
}

/// `ordering = "forward" | "reverse" | "random"`, as an `Ordering` variant.
fn ordering_value(value: &Expr) -> syn::Result<TokenStream> {
    Ok(
        match string_choice(value, "ordering", &["forward", "reverse", "random"])?.as_str() {
            "reverse" => quote!(Reverse),
            "random" => quote!(Random),
            _ => quote!(Forward),
        },
    )
}

/// `errors = "stop" | "remove" | "pass"`.
fn error_policy(value: &Expr) -> syn::Result<ErrorPolicy> {
    Ok(
        match string_choice(value, "errors", &["stop", "remove", "pass"])?.as_str() {
            "remove" => ErrorPolicy::Remove,
            "pass" => ErrorPolicy::Pass,
            _ => ErrorPolicy::Stop,
        },
    )
}

fn string_choice(value: &Expr, name: &str, choices: &[&str]) -> syn::Result<String> {
    let hint = || {
        let list: Vec<String> = choices.iter().map(|c| format!("\"{c}\"")).collect();
        format!("`{name}` takes one of {}", list.join(", "))
    };
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) if choices.contains(&s.value().as_str()) => Ok(s.value()),
        other => Err(syn::Error::new_spanned(other, hint())),
    }
}

#[cfg(test)]
mod tests {
    use super::{FOREACH_OPTIONS, FUTURE_OPTIONS, RawOption, foreach_options, future_options};
    use crate::errors::Errors;
    use proc_macro2::Span;
    use syn::Ident;

    /// The message of checking `name = x` alone, if it is an error.
    fn error_of(check: impl Fn(Vec<RawOption>, &Errors), name: &str) -> String {
        let raw = vec![RawOption {
            name: Ident::new(name, Span::call_site()),
            value: syn::parse_quote!(x),
        }];
        let errors = Errors::new();
        check(raw, &errors);
        errors
            .check()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn every_listed_option_is_taken() {
        let foreach = |raw, errors: &Errors| {
            foreach_options(raw, errors);
        };
        let future = |raw, errors: &Errors| {
            future_options(raw, errors);
        };
        for (name, _) in FOREACH_OPTIONS {
            assert!(
                !error_of(foreach, name).contains("unknown option"),
                "{name}"
            );
        }
        for (name, _) in FUTURE_OPTIONS {
            assert!(!error_of(future, name).contains("unknown option"), "{name}");
        }
        assert!(error_of(future, "progress").contains("unknown option `progress` for `future!`"));
    }
}
