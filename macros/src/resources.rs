//! `resources = (cpus = 4, mem = "2G", ...)` on `future!` and `foreach!`
//! (and, passed on, `#[futurize]`): what the work needs, as the runtime's
//! `Resources`.
//!
//! Literal values are checked here, by the rules the runtime's
//! `Resources::check` applies, so a malformed request is a compile error on
//! its token; any other expression is passed on and checked by the runtime
//! before anything is submitted. `resources = <expression>` passes a whole
//! `Resources` value as it is.

use crate::errors::Errors;
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, Lit, LitStr, UnOp};

/// What `Resources` has, as written in a `resources = (...)` list.
const RESOURCES: &str = "`cpus = 4`, `mem = \"2G\"`, `time = \"1h30m\"`, \
    `partition = \"short\"`, `gpus = 1`, `nodes = 1`, `ntasks = 5`, \
    `sbatch = [\"--qos=low\"]`";
const ALIASES: &str = "R batchtools' names work too: `ncpus` and `cpus_per_task` for `cpus`, \
    `memory` for `mem`, `walltime` for `time`";

/// The field of `Resources` a name sets, batchtools' names included.
fn field_of(name: &str) -> Option<&'static str> {
    Some(match name {
        "cpus" | "ncpus" | "cpus_per_task" => "cpus",
        "mem" | "memory" => "mem",
        "time" | "walltime" => "time",
        "partition" => "partition",
        "gpus" => "gpus",
        "nodes" => "nodes",
        "ntasks" => "ntasks",
        "sbatch" => "sbatch",
        _ => return None,
    })
}

/// Checks `resources = ...`; tokens of a `Resources` value, or every error
/// found in the list.
pub(crate) fn resources_value(value: &Expr) -> syn::Result<TokenStream> {
    let p = quote!(::futurize::__private);
    let pairs: Vec<&Expr> = match value {
        Expr::Tuple(t) => t.elems.iter().collect(),
        Expr::Paren(inner) if matches!(*inner.expr, Expr::Assign(_)) => vec![&*inner.expr],
        Expr::Paren(inner) if !matches!(*inner.expr, Expr::Lit(_)) => {
            return Ok(whole_value(value));
        }
        Expr::Lit(_) | Expr::Paren(_) | Expr::Array(_) => {
            return Err(syn::Error::new_spanned(
                value,
                format!(
                    "`resources` takes a list such as `resources = (cpus = 4, mem = \"2G\")`, \
                     or a `Resources` value; the resources are {RESOURCES}"
                ),
            ));
        }
        _ => return Ok(whole_value(value)),
    };
    if pairs.is_empty() {
        return Err(syn::Error::new_spanned(
            value,
            "`resources = ()` asks for nothing: name what the work needs, such as \
             `resources = (cpus = 4, mem = \"2G\")`, or leave the option out",
        ));
    }
    let errors = Errors::new();
    let mut set: Vec<(&'static str, Ident)> = Vec::new();
    let mut fields = Vec::new();
    for pair in pairs {
        let checked = resource_name(pair, &set).and_then(|(field, name, value)| {
            // Named, even when its value is wrong: a second one is an error too.
            set.push((field, name.clone()));
            let tokens = resource_value(field, &name.to_string(), value)?;
            let field = Ident::new(field, name.span());
            Ok(quote!(#field: #tokens))
        });
        fields.extend(errors.push_err(checked));
    }
    errors.check()?;
    Ok(quote!(#p::Resources {
        #(#fields,)*
        ..::core::default::Default::default()
    }))
}

/// `resources = <expression>`: a `Resources` value, checked by the runtime;
/// a value of another type is an error on the expression.
fn whole_value(value: &Expr) -> TokenStream {
    let p = quote!(::futurize::__private);
    quote_spanned!(value.span()=> ::core::convert::identity::<#p::Resources>(#value))
}

/// One `name = value`: the field it sets, the name as written, and the value.
fn resource_name<'a>(
    pair: &'a Expr,
    set: &[(&'static str, Ident)],
) -> syn::Result<(&'static str, Ident, &'a Expr)> {
    let Expr::Assign(assign) = pair else {
        return Err(syn::Error::new_spanned(
            pair,
            format!("write each resource as `name = value`; the resources are {RESOURCES}"),
        ));
    };
    let name = match &*assign.left {
        Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
            p.path.get_ident().cloned().expect("checked")
        }
        other => {
            return Err(syn::Error::new_spanned(
                other,
                format!("expected a resource name; the resources are {RESOURCES}"),
            ));
        }
    };
    let written = name.to_string();
    let Some(field) = field_of(&written) else {
        return Err(syn::Error::new(
            name.span(),
            format!("unknown resource `{written}`; the resources are {RESOURCES} ({ALIASES})"),
        ));
    };
    if let Some((_, before)) = set.iter().find(|(f, _)| *f == field) {
        let message = if *before == written {
            format!("resource `{written}` is given twice: give it once")
        } else if written == field {
            format!(
                "`{field}` is already set by `{before}`, batchtools' name for it: give one of them"
            )
        } else if *before == field {
            format!(
                "`{written}` is batchtools' name for `{field}`, which is already set: give one of them"
            )
        } else {
            format!("`{written}` and `{before}` both set `{field}`: give one of them")
        };
        return Err(syn::Error::new(name.span(), message));
    }
    Ok((field, name, &assign.right))
}

/// The value of `field` (written as `name`) as the runtime's field type.
fn resource_value(field: &str, name: &str, value: &Expr) -> syn::Result<TokenStream> {
    match field {
        "cpus" | "nodes" | "ntasks" => count(name, value, 1),
        "gpus" => count(name, value, 0),
        "mem" => text(name, value, memory),
        "time" => text(name, value, |t| {
            futurize_units::compact_duration(t).map_err(|e| e.message(&format!("`{name}`")))
        }),
        "partition" => text(name, value, partition),
        _ => sbatch(name, value),
    }
}

/// A `u32` count of at least `least`, as `Option<u32>`.
fn count(name: &str, value: &Expr, least: u32) -> syn::Result<TokenStream> {
    let hint = format!("`{name}` takes a whole number, such as `{name} = 4`");
    let n = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i
            .base10_parse::<u32>()
            .map_err(|_| syn::Error::new_spanned(i, format!("{hint}, at most {}", u32::MAX)))?,
        Expr::Lit(other) => return Err(syn::Error::new_spanned(other, hint)),
        Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) && matches!(*u.expr, Expr::Lit(_)) => {
            return Err(syn::Error::new_spanned(u, hint));
        }
        other => return Ok(quote_spanned!(other.span()=> ::core::option::Option::Some(#other))),
    };
    if n < least {
        return Err(syn::Error::new_spanned(
            value,
            format!(
                "`{name} = {n}` asks for nothing: give at least {least}, or leave `{name}` out \
                 to take the plan's default"
            ),
        ));
    }
    Ok(quote!(::core::option::Option::Some(#n)))
}

/// A text checked by `check` (which gives the text to pass on), as
/// `Option<String>`.
fn text(
    name: &str,
    value: &Expr,
    check: impl Fn(&str) -> Result<String, String>,
) -> syn::Result<TokenStream> {
    let checked = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => check(&s.value()).map_err(|e| syn::Error::new(s.span(), e))?,
        Expr::Lit(other) => {
            let example = match (name, &other.lit) {
                ("mem" | "memory", Lit::Int(n)) => format!("\"{n}\"` (megabytes) or `\"2G\""),
                ("mem" | "memory", _) => "\"2G\"".to_string(),
                ("time" | "walltime", _) => "\"1h30m\"".to_string(),
                _ => "\"short\"".to_string(),
            };
            return Err(syn::Error::new_spanned(
                other,
                format!("`{name}` takes a text, such as `{name} = {example}`"),
            ));
        }
        other => {
            return Ok(quote_spanned!(other.span()=>
                ::core::option::Option::Some(::std::string::String::from(#other))
            ));
        }
    };
    Ok(quote!(::core::option::Option::Some(::std::string::String::from(#checked))))
}

/// `"500M"`, `"2G"`, `"1.5TB"`, `"800KiB"`, or a plain number of megabytes,
/// checked by the parser the runtime reads it with; the text to pass on.
fn memory(text: &str) -> Result<String, String> {
    match futurize_units::parse_memory(text) {
        Ok(_) => Ok(text.trim().to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// One partition name (or Slurm's comma-separated list).
fn partition(text: &str) -> Result<String, String> {
    if !text.is_empty() && !text.contains(char::is_whitespace) {
        return Ok(text.to_string());
    }
    let what = match text {
        "" => "an empty text".to_string(),
        _ => format!("`{text}`"),
    };
    Err(format!(
        "{what} is not a partition name: write one without spaces, such as \
         `partition = \"short\"` (several as \"short,long\")"
    ))
}

/// `sbatch = ["--qos=low", ...]`, each literal checked, as `Vec<String>`.
fn sbatch(name: &str, value: &Expr) -> syn::Result<TokenStream> {
    let hint = format!(
        "`{name}` takes a list of sbatch options as written on its command line, such as \
         `{name} = [\"--qos=low\", \"--account=lab\"]`"
    );
    let array = match value {
        Expr::Array(array) => array,
        Expr::Lit(other) => return Err(syn::Error::new_spanned(other, hint)),
        other => {
            return Ok(quote_spanned!(other.span()=>
                ::core::iter::Iterator::collect(::core::iter::Iterator::map(
                    ::core::iter::IntoIterator::into_iter(#other),
                    |__futurize_option| ::std::string::ToString::to_string(&__futurize_option),
                ))
            ));
        }
    };
    let errors = Errors::new();
    let mut options = Vec::new();
    for element in &array.elems {
        match element {
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) => {
                if errors.push_err(sbatch_option(s)).is_some() {
                    options.push(quote!(::std::string::String::from(#s)));
                }
            }
            Expr::Lit(other) => errors.push(syn::Error::new_spanned(other, &hint)),
            other => options.push(quote_spanned!(other.span()=>
                ::std::string::String::from(#other)
            )),
        }
    }
    errors.check()?;
    Ok(quote!(::std::vec![#(#options),*]))
}

fn sbatch_option(s: &LitStr) -> syn::Result<()> {
    let text = s.value();
    if text.starts_with('-') {
        return Ok(());
    }
    let fix = match text.trim().strip_prefix("#SBATCH") {
        Some(rest) => rest.trim().to_string(),
        None => format!("--{}", text.trim()),
    };
    Err(syn::Error::new(
        s.span(),
        format!(
            "the sbatch option `{text}` does not start with `-`: write it as on sbatch's \
             command line, such as \"{fix}\""
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::{memory, partition, resources_value};
    use syn::Expr;

    #[test]
    fn a_list_becomes_a_resources_literal() {
        let list: Expr = syn::parse_quote!((
            ncpus = 2,
            walltime = "1 h 30 min",
            sbatch = ["--qos=low", account]
        ));
        let tokens = resources_value(&list).unwrap().to_string();
        for part in [
            "cpus : :: core :: option :: Option :: Some (2u32)",
            "time : :: core :: option :: Option :: Some (:: std :: string :: String :: from (\"1h30m\"))",
            "sbatch : :: std :: vec ! [:: std :: string :: String :: from (\"--qos=low\") , :: std :: string :: String :: from (account)]",
            ".. :: core :: default :: Default :: default ()",
        ] {
            assert!(tokens.contains(part), "{part} in {tokens}");
        }
        let whole: Expr = syn::parse_quote!(site_defaults());
        assert!(
            resources_value(&whole)
                .unwrap()
                .to_string()
                .contains("identity")
        );
    }

    #[test]
    fn memory_texts_as_the_runtime_reads_them() {
        for good in ["2G", "500M", "1.5TB", "800KiB", "100", " 4 g ", "3Gi"] {
            assert!(memory(good).is_ok(), "{good:?}");
        }
        for bad in ["", "2X", "0G", "G", "2GG", "-1G", "1e3M", "lots", "2 GiBs"] {
            assert!(memory(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn partition_names() {
        assert!(partition("short").is_ok());
        assert!(partition("short,long").is_ok());
        assert!(partition("").is_err());
        assert!(partition("gpu short").is_err());
    }
}
