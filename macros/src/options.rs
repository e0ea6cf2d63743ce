//! Options written after a body: `label = "..", lazy = true, globals = [a, b]`.
//!
//! Parsing only collects `name = value` pairs; each macro then checks them
//! against the options it knows, so an unknown option or a malformed value is
//! a compile error pointing at it, listing what would be accepted.

use crate::resources::resources_value;
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
pub struct FutureOptions {
    pub label: Option<Expr>,
    pub lazy: bool,
    pub globals: Option<Vec<Ident>>,
    pub seed: Option<Seed>,
    pub stdout: bool,
    pub timeout: Option<proc_macro2::TokenStream>,
    /// A `Resources` expression for the runtime.
    pub resources: Option<proc_macro2::TokenStream>,
}

/// `seed = true` or `seed = <u64 expression>`.
pub enum Seed {
    Session,
    Fixed(Expr),
}

pub const FUTURE_OPTIONS: &str = "`label = \"name\"`, `lazy = true`, `globals = [a, b]`, \
    `seed = true | <u64>`, `timeout = \"10m\"`, `stdout = false`, \
    `resources = (cpus = 4, mem = \"2G\", ...)`";

/// Parses a humane duration: `"500ms"`, `"30s"`, `"10m"`, `"1h30m"`,
/// `"1.5h"`, `"2d"`, `"2 min 5 s"`. Returns milliseconds; errors name
/// `option`, the option the text was given to.
pub fn parse_duration(option: &str, text: &str) -> Result<u64, String> {
    humane_duration(option, text).map(|d| d.millis)
}

/// The duration as the runtime's own parser reads it: the same terms with
/// short units and no spaces (`"2 min 5 s"` → `"2m5s"`; `"1h30m"` stays).
pub fn compact_duration(option: &str, text: &str) -> Result<String, String> {
    Ok(humane_duration(option, text)?
        .terms
        .iter()
        .map(|(number, unit)| format!("{number}{unit}"))
        .collect())
}

const DURATION_HINT: &str =
    "write a duration such as \"500ms\", \"30s\", \"10m\", \"1h30m\" or \"2d\"";

/// A checked duration.
struct HumaneDuration<'a> {
    millis: u64,
    /// Its `<number><unit>` terms: the number as written, the unit short.
    terms: Vec<(&'a str, &'static str)>,
}

fn humane_duration<'a>(option: &str, text: &'a str) -> Result<HumaneDuration<'a>, String> {
    let mut total = 0f64;
    let mut terms = Vec::new();
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(format!("`{option}` is empty: {DURATION_HINT}"));
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a duration: {DURATION_HINT}"))?;
        let after = after.trim_start();
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let (unit, millis) = match unit {
            "ms" => ("ms", 1.0),
            "s" | "sec" | "secs" => ("s", 1e3),
            "m" | "min" | "mins" => ("m", 60e3),
            "h" | "hr" | "hrs" => ("h", 3600e3),
            "d" | "day" | "days" => ("d", 86400e3),
            "" => {
                return Err(format!(
                    "`{text}` has a number without a unit: {DURATION_HINT}"
                ));
            }
            other => return Err(format!("`{other}` is not a unit of time: {DURATION_HINT}")),
        };
        total += value * millis;
        terms.push((number, unit));
        rest = after.trim_start();
    }
    if total < 1.0 {
        return Err(format!("`{option}` must be at least 1ms: {DURATION_HINT}"));
    }
    Ok(HumaneDuration {
        millis: total.round() as u64,
        terms,
    })
}

/// `timeout = "10m"` (checked here) or `timeout = <Duration expression>`.
pub fn timeout_value(value: &Expr) -> syn::Result<proc_macro2::TokenStream> {
    use quote::quote;
    let p = quote!(::futurize::__private);
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => {
            let millis =
                parse_duration("timeout", &s.value()).map_err(|e| syn::Error::new(s.span(), e))?;
            let text = s.value().trim().to_string();
            Ok(quote!(#p::TimeLimit {
                limit: ::std::time::Duration::from_millis(#millis),
                text: ::std::string::String::from(#text),
            }))
        }
        Expr::Lit(other) => Err(syn::Error::new_spanned(
            other,
            "`timeout` takes a duration such as `timeout = \"10m\"`, or a `std::time::Duration`",
        )),
        other => Ok(quote!(#p::TimeLimit::from_duration(#other))),
    }
}

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
pub fn first_time(seen: &mut Vec<String>, name: &Ident, errors: &mut Vec<syn::Error>) -> bool {
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
    let mut opts = FutureOptions {
        label: None,
        lazy: false,
        globals: None,
        seed: None,
        stdout: true,
        timeout: None,
        resources: None,
    };
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
            "stdout" => match bool_value(&name, &value) {
                Ok(v) => opts.stdout = v,
                Err(e) => errors.push(e),
            },
            "timeout" => match timeout_value(&value) {
                Ok(v) => opts.timeout = Some(v),
                Err(e) => errors.push(e),
            },
            "resources" => match resources_value(&value) {
                Ok(v) => opts.resources = Some(v),
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
    pub stdout: bool,
    pub progress: bool,
    pub timeout: Option<proc_macro2::TokenStream>,
    pub retries: Option<Expr>,
    /// A `Resources` expression for the runtime.
    pub resources: Option<proc_macro2::TokenStream>,
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
    `seed = true | <u64>`, `timeout = \"10m\"`, `retries = n`, `progress = true`, \
    `stdout = false`, `resources = (cpus = 4, mem = \"2G\", ...)`";

/// Options of the design that later versions add; named so the error can say so.
const NOT_YET: &[&str] = &["lazy"];

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
        stdout: true,
        progress: false,
        timeout: None,
        retries: None,
        resources: None,
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
                "stdout" => opts.stdout = bool_value(&name, &value)?,
                "progress" => opts.progress = bool_value(&name, &value)?,
                "timeout" => opts.timeout = Some(timeout_value(&value)?),
                "resources" => opts.resources = Some(resources_value(&value)?),
                "retries" => {
                    if let Expr::Lit(ExprLit { lit, .. }) = &value
                        && !matches!(lit, Lit::Int(i) if i.base10_parse::<u32>().is_ok())
                    {
                        return Err(syn::Error::new_spanned(
                            lit,
                            "`retries` takes a whole number, such as `retries = 2`",
                        ));
                    }
                    opts.retries = Some(value);
                }
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

#[cfg(test)]
mod tests {
    use super::{compact_duration, parse_duration};

    #[test]
    fn humane_durations() {
        let ms = |text| parse_duration("timeout", text);
        assert_eq!(ms("500ms"), Ok(500));
        assert_eq!(ms("30s"), Ok(30_000));
        assert_eq!(ms("10m"), Ok(600_000));
        assert_eq!(ms("1h30m"), Ok(5_400_000));
        assert_eq!(ms(" 1.5 h "), Ok(5_400_000));
        assert_eq!(ms("2d"), Ok(172_800_000));
        assert_eq!(ms("2 min 5 s"), Ok(125_000));
        for bad in ["", "10", "m", "5 parsecs", "1..2s", "0s", "-3s"] {
            assert!(ms(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn compact_durations_keep_the_terms() {
        let compact = |text| compact_duration("time", text);
        assert_eq!(compact("1h30m").as_deref(), Ok("1h30m"));
        assert_eq!(compact(" 2 min 5 secs ").as_deref(), Ok("2m5s"));
        assert_eq!(compact("1.5 hrs").as_deref(), Ok("1.5h"));
        assert_eq!(compact("250ms").as_deref(), Ok("250ms"));
        assert!(compact("0m").is_err());
        assert!(compact("").unwrap_err().starts_with("`time` is empty"));
    }
}
