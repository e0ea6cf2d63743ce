//! Options written after a body: `label = "..", lazy = true, globals = [a, b]`.
//!
//! Parsing only collects `name = value` pairs; each macro then checks them
//! against the options it knows, so an unknown option or a malformed value is
//! a compile error pointing at it, listing what would be accepted.

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Ident, Lit, LitBool, Token};

/// One `name = value` pair as written.
pub struct RawOption {
    pub name: Ident,
    pub value: Expr,
}

impl Parse for RawOption {
    fn parse(input: ParseStream) -> syn::Result<Self> {
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
pub fn parse_list(input: ParseStream) -> syn::Result<Vec<RawOption>> {
    let list: Punctuated<RawOption, Token![,]> = Punctuated::parse_terminated(input)?;
    Ok(list.into_iter().collect())
}

/// Options of `future!`.
#[derive(Default)]
pub struct FutureOptions {
    pub label: Option<Expr>,
    pub lazy: bool,
    pub globals: Option<Vec<Ident>>,
    pub seed: Option<Seed>,
}

/// `seed = true` or `seed = <u64 expression>`.
pub enum Seed {
    Session,
    Fixed(Expr),
}

pub const FUTURE_OPTIONS: &str =
    "`label = \"name\"`, `lazy = true`, `globals = [a, b]`, `seed = true | <u64>`";

/// Checks `seed = ...`: `true`, `false` (no seed) or a `u64` expression.
pub fn seed_value(value: Expr) -> syn::Result<Option<Seed>> {
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

/// Notes an option's name; false (with an error) when it was given before.
fn first_time(seen: &mut Vec<String>, name: &Ident, errors: &mut Vec<syn::Error>) -> bool {
    let key = name.to_string();
    if seen.contains(&key) {
        errors.push(syn::Error::new(
            name.span(),
            format!("option `{key}` is given twice"),
        ));
        return false;
    }
    seen.push(key);
    true
}

/// Checks the options of `future!`, collecting every error.
pub fn future_options(raw: Vec<RawOption>, errors: &mut Vec<syn::Error>) -> FutureOptions {
    let mut opts = FutureOptions::default();
    let mut seen: Vec<String> = Vec::new();
    for RawOption { name, value } in raw {
        let key = name.to_string();
        if !first_time(&mut seen, &name, errors) {
            continue;
        }
        match key.as_str() {
            "label" => match label_value(value) {
                Ok(v) => opts.label = Some(v),
                Err(e) => errors.push(e),
            },
            "lazy" => match bool_value(&name, &value) {
                Ok(v) => opts.lazy = v,
                Err(e) => errors.push(e),
            },
            "globals" => match globals_value(&value) {
                Ok(v) => opts.globals = Some(v),
                Err(e) => errors.push(e),
            },
            "seed" => match seed_value(value) {
                Ok(v) => opts.seed = v,
                Err(e) => errors.push(e),
            },
            _ => errors.push(syn::Error::new(
                name.span(),
                format!("unknown option `{key}` for `future!`; the options are {FUTURE_OPTIONS}"),
            )),
        }
    }
    opts
}

fn label_value(value: Expr) -> syn::Result<Expr> {
    match &value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(_), ..
        }) => Ok(value),
        Expr::Lit(other) => Err(syn::Error::new_spanned(
            other,
            "`label` takes a string, such as `label = \"sum\"`",
        )),
        _ => Ok(value),
    }
}

pub fn bool_value(name: &Ident, value: &Expr) -> syn::Result<bool> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(LitBool { value, .. }),
            ..
        }) => Ok(*value),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("`{name}` takes `true` or `false`"),
        )),
    }
}

pub fn globals_value(value: &Expr) -> syn::Result<Vec<Ident>> {
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

/// Combines collected errors into one, or none.
pub fn combine(errors: Vec<syn::Error>) -> Option<syn::Error> {
    errors.into_iter().reduce(|mut a, b| {
        a.combine(b);
        a
    })
}

/// Options of `foreach!`, checked.
pub struct ForeachOptions {
    pub label: Option<Expr>,
    pub globals: Option<Vec<Ident>>,
    pub combine: Option<Expr>,
    /// `Sizing` expression for the runtime.
    pub sizing: proc_macro2::TokenStream,
    pub ordering: proc_macro2::TokenStream,
    pub errors: ErrorsOption,
    pub seed: Option<Seed>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ErrorsOption {
    Stop,
    Remove,
    Pass,
}

pub const FOREACH_OPTIONS: &str = "`chunk_size = n`, `scheduling = s`, \
    `ordering = \"forward\" | \"reverse\" | \"random\"`, `globals = [a, b]`, \
    `combine = |a, b| ...`, `errors = \"stop\" | \"remove\" | \"pass\"`, `label = \"name\"`, \
    `seed = true | <u64>`";

/// Options of the design that later versions add; named so the error can say so.
const NOT_YET: &[&str] = &[
    "progress",
    "timeout",
    "retries",
    "resources",
    "stdout",
    "lazy",
];

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

/// Checks the options of `foreach!`, collecting every error.
pub fn foreach_options(raw: Vec<RawOption>, errors: &mut Vec<syn::Error>) -> ForeachOptions {
    use quote::quote;
    let mut opts = ForeachOptions {
        label: None,
        globals: None,
        combine: None,
        sizing: quote!(Adaptive),
        ordering: quote!(Forward),
        errors: ErrorsOption::Stop,
        seed: None,
    };
    let mut seen: Vec<String> = Vec::new();
    let mut sizing_from: Option<Ident> = None;
    for RawOption { name, value } in raw {
        let key = name.to_string();
        if !first_time(&mut seen, &name, errors) {
            continue;
        }
        let result: syn::Result<()> = (|| {
            match key.as_str() {
                "label" => opts.label = Some(label_value(value)?),
                "globals" => opts.globals = Some(globals_value(&value)?),
                "combine" => opts.combine = Some(value),
                "seed" => opts.seed = seed_value(value)?,
                "chunk_size" | "scheduling" => {
                    if let Some(other) = &sizing_from {
                        return Err(syn::Error::new(
                            name.span(),
                            format!("`{key}` and `{other}` both set chunk sizes: give one of them"),
                        ));
                    }
                    if let Expr::Lit(ExprLit { lit, .. }) = &value {
                        let bad = match lit {
                            Lit::Int(i) => i.base10_parse::<u64>().map(|n| n == 0).unwrap_or(true),
                            Lit::Float(f) => {
                                f.base10_parse::<f64>().map(|x| x <= 0.0).unwrap_or(true)
                            }
                            _ => true,
                        };
                        if bad {
                            return Err(syn::Error::new_spanned(
                                lit,
                                format!("`{key}` takes a number greater than 0"),
                            ));
                        }
                    }
                    opts.sizing = if key == "chunk_size" {
                        quote!(Fixed(#value))
                    } else {
                        quote!(PerWorker(#value as f64))
                    };
                    sizing_from = Some(name.clone());
                }
                "ordering" => {
                    let choice =
                        string_choice(&value, "ordering", &["forward", "reverse", "random"])?;
                    opts.ordering = match choice.as_str() {
                        "reverse" => quote!(Reverse),
                        "random" => quote!(Random),
                        _ => quote!(Forward),
                    };
                }
                "errors" => {
                    opts.errors = match string_choice(
                        &value,
                        "errors",
                        &["stop", "remove", "pass"],
                    )?
                    .as_str()
                    {
                        "remove" => ErrorsOption::Remove,
                        "pass" => ErrorsOption::Pass,
                        _ => ErrorsOption::Stop,
                    };
                }
                other if NOT_YET.contains(&other) => {
                    return Err(syn::Error::new(
                        name.span(),
                        format!(
                            "option `{other}` is not supported by this version of `foreach!` yet; the options are {FOREACH_OPTIONS}"
                        ),
                    ));
                }
                other => {
                    return Err(syn::Error::new(
                        name.span(),
                        format!(
                            "unknown option `{other}` for `foreach!`; the options are {FOREACH_OPTIONS}"
                        ),
                    ));
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            errors.push(e);
        }
    }
    if opts.combine.is_some() && opts.errors == ErrorsOption::Pass {
        errors.push(syn::Error::new(
            proc_macro2::Span::call_site(),
            "`combine` and `errors = \"pass\"` cannot go together: a combined value has no per-element results",
        ));
    }
    opts
}
