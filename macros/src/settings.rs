//! Per-task settings: the options that say how each task runs (`label`,
//! `stdout`, `timeout`, `retries`, `progress`, `errors`, `resources`), each
//! checked into a field of the runtime's options.
//!
//! The invariant: a setting is one row of `SETTINGS` (its name, which is
//! the runtime's field; which macros take it; its check), and a call's
//! settings are written all the same way, `name: value,` for each option
//! given, in the order of the table, before `..Default::default()`: a
//! setting not given takes the runtime's default (`Settings::default`, the
//! one place defaults live), and a call that gives none costs nothing to
//! build. A new per-task option is a row here and its entry in the list of
//! options an error shows (`options`).

use crate::resources::resources_value;
use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{Expr, ExprLit, Ident, Lit, LitBool};

/// One per-task setting.
struct Setting {
    /// The option's name, and the runtime's field.
    name: &'static str,
    /// Whether `future!` takes it (`foreach!` takes every setting).
    future: bool,
    /// The option's value, checked, as the field; `None` for a setting the
    /// macro checks itself because the value also shapes the code.
    check: Option<fn(&Ident, Expr) -> syn::Result<TokenStream>>,
}

const SETTINGS: &[Setting] = &[
    Setting {
        name: "label",
        future: true,
        check: Some(label),
    },
    Setting {
        name: "stdout",
        future: true,
        check: Some(flag),
    },
    Setting {
        name: "timeout",
        future: true,
        check: Some(|_, value| timeout_value(&value).map(some)),
    },
    Setting {
        name: "retries",
        future: true,
        check: Some(retries),
    },
    Setting {
        name: "escalate",
        future: true,
        check: Some(|_, value| escalate_value(&value)),
    },
    Setting {
        name: "progress",
        future: false,
        check: Some(flag),
    },
    // Checked by `foreach!`, which picks its engine by the policy too.
    Setting {
        name: "errors",
        future: false,
        check: None,
    },
    Setting {
        name: "resources",
        future: true,
        check: Some(|_, value| resources_value(&value).map(boxed)),
    },
];

/// The settings of one call: each setting its macro takes, and its value
/// when the option was given.
pub(crate) struct Settings {
    fields: Vec<(&'static Setting, Option<TokenStream>)>,
}

impl Settings {
    /// The settings `future!` takes, none given yet.
    pub(crate) fn of_future() -> Settings {
        Settings::of(|s| s.future)
    }

    /// The settings `foreach!` takes, none given yet.
    pub(crate) fn of_foreach() -> Settings {
        Settings::of(|_| true)
    }

    fn of(takes: impl Fn(&Setting) -> bool) -> Settings {
        let fields = SETTINGS
            .iter()
            .filter(|s| takes(s))
            .map(|s| (s, None))
            .collect();
        Settings { fields }
    }

    /// Checks `name = value` when `name` is a setting of this call (and not
    /// one its macro checks itself); `None` when it is not.
    pub(crate) fn check(&mut self, name: &Ident, value: Expr) -> Option<syn::Result<()>> {
        let (setting, field) = self.fields.iter_mut().find(|(s, _)| name == s.name)?;
        let checked = (setting.check?)(name, value);
        Some(checked.map(|tokens| *field = Some(tokens)))
    }

    /// Sets the field of a setting the macro checked itself.
    pub(crate) fn set(&mut self, name: &str, tokens: TokenStream) {
        let (_, field) = self
            .fields
            .iter_mut()
            .find(|(s, _)| s.name == name)
            .expect("a setting of this call");
        *field = Some(tokens);
    }
}

/// `name: value,` for each setting given.
impl ToTokens for Settings {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        for (setting, value) in &self.fields {
            let Some(value) = value else { continue };
            let name = Ident::new(setting.name, proc_macro2::Span::call_site());
            tokens.extend(quote!(#name: #value,));
        }
    }
}

/// `errors = "stop" | "remove" | "pass"`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorPolicy {
    Stop,
    Remove,
    Pass,
}

impl ErrorPolicy {
    /// The runtime's `ErrorPolicy`.
    pub(crate) fn tokens(self) -> TokenStream {
        let policy = match self {
            ErrorPolicy::Stop => quote!(Stop),
            ErrorPolicy::Remove => quote!(Remove),
            ErrorPolicy::Pass => quote!(Pass),
        };
        quote!(::futurize::__private::ErrorPolicy::#policy)
    }
}

/// `Some(Box::new(value))`, as tokens.
fn boxed(value: TokenStream) -> TokenStream {
    some(quote!(::std::boxed::Box::new(#value)))
}

fn some(value: TokenStream) -> TokenStream {
    quote!(::core::option::Option::Some(#value))
}

/// `label = "name"` or a string expression, as `Option<String>`.
fn label(_: &Ident, value: Expr) -> syn::Result<TokenStream> {
    match &value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(_), ..
        }) => {}
        Expr::Lit(other) => {
            return Err(syn::Error::new_spanned(
                other,
                "`label` takes a string, such as `label = \"sum\"`",
            ));
        }
        _ => {}
    }
    Ok(some(quote!(::std::string::String::from(#value))))
}

fn flag(name: &Ident, value: Expr) -> syn::Result<TokenStream> {
    bool_value(name, &value).map(|b| quote!(#b))
}

/// `retries = n`: a whole number, or an expression.
fn retries(_: &Ident, value: Expr) -> syn::Result<TokenStream> {
    if let Expr::Lit(ExprLit { lit, .. }) = &value
        && !matches!(lit, Lit::Int(i) if i.base10_parse::<u32>().is_ok())
    {
        return Err(syn::Error::new_spanned(
            lit,
            "`retries` takes a whole number, such as `retries = 2`",
        ));
    }
    Ok(quote!(#value))
}

/// `true` or `false`.
pub(crate) fn bool_value(name: &Ident, value: &Expr) -> syn::Result<bool> {
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

/// `timeout = "10m"` (checked here) or `timeout = <Duration expression>`,
/// as a `TimeLimit`.
fn timeout_value(value: &Expr) -> syn::Result<TokenStream> {
    let p = quote!(::futurize::__private);
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => {
            let text = s.value();
            let limit = futurize_units::parse_duration(&text)
                .map_err(|e| syn::Error::new(s.span(), e.message("`timeout`")))?;
            // Whole milliseconds, rounded: what is sent to workers.
            let millis =
                u64::try_from((limit.as_nanos() + 500_000) / 1_000_000).unwrap_or(u64::MAX);
            let text = text.trim();
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

/// Checks `escalate = false | true | (mem = 2.0, time = 1.5)`: by how much
/// a retry's memory and time grow when its job ran out of them.
fn escalate_value(value: &Expr) -> syn::Result<TokenStream> {
    let p = quote!(::futurize::__private);
    let hint = "`escalate` takes `false`, `true` (double) or factors such as \
                `escalate = (mem = 2.0, time = 1.5)`";
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(if b.value {
            quote!(::core::option::Option::Some(
                ::core::default::Default::default()
            ))
        } else {
            quote!(::core::option::Option::None)
        }),
        Expr::Tuple(t) => {
            let (mut mem, mut time) = (quote!(2.0), quote!(2.0));
            for e in &t.elems {
                let Expr::Assign(a) = e else {
                    return Err(syn::Error::new_spanned(e, hint));
                };
                let factor = factor_value(&a.right)?;
                match &*a.left {
                    Expr::Path(n) if n.path.is_ident("mem") => mem = factor,
                    Expr::Path(n) if n.path.is_ident("time") => time = factor,
                    other => {
                        return Err(syn::Error::new_spanned(
                            other,
                            format!("{hint}; it knows `mem` and `time`"),
                        ));
                    }
                }
            }
            Ok(quote!(::core::option::Option::Some(#p::Escalation { mem: #mem, time: #time })))
        }
        Expr::Paren(p) => escalate_value(&Expr::Tuple(syn::ExprTuple {
            attrs: Vec::new(),
            paren_token: p.paren_token,
            elems: std::iter::once((*p.expr).clone()).collect(),
        })),
        _ => Err(syn::Error::new_spanned(value, hint)),
    }
}

/// A growth factor: a number literal of at least 1.
fn factor_value(value: &Expr) -> syn::Result<TokenStream> {
    let number = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => f.base10_parse::<f64>().ok(),
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse::<u32>().ok().map(f64::from),
        _ => None,
    };
    match number {
        Some(n) if (1.0..=100.0).contains(&n) => Ok(quote!(#n)),
        _ => Err(syn::Error::new_spanned(
            value,
            "an `escalate` factor is a number from 1 (the same) to 100, such as `2.0`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::Settings;
    use proc_macro2::{Span, TokenTree};
    use quote::quote;
    use syn::{Expr, Ident};

    const ALL: [&str; 8] = [
        "label",
        "stdout",
        "timeout",
        "retries",
        "escalate",
        "progress",
        "errors",
        "resources",
    ];

    fn check(settings: &mut Settings, name: &str, value: Expr) -> Option<syn::Result<()>> {
        settings.check(&Ident::new(name, Span::call_site()), value)
    }

    #[test]
    fn only_given_settings_are_written_in_table_order() {
        let mut future = Settings::of_future();
        assert!(quote!(#future).is_empty(), "nothing given, nothing written");
        assert!(check(&mut future, "stdout", syn::parse_quote!(false)).is_some_and(|r| r.is_ok()));
        assert!(check(&mut future, "progress", syn::parse_quote!(true)).is_none());
        assert_eq!(quote!(#future).to_string(), "stdout : false ,");
        let mut foreach = Settings::of_foreach();
        assert!(check(&mut foreach, "errors", syn::parse_quote!("pass")).is_none());
        let twice = check(&mut foreach, "retries", syn::parse_quote!("twice"));
        assert!(twice.is_some_and(|r| r.is_err()));
        // Given in reverse order, written in the table's.
        for (name, value) in [
            ("resources", syn::parse_quote!((cpus = 2))),
            ("progress", syn::parse_quote!(true)),
            ("escalate", syn::parse_quote!((mem = 1.5))),
            ("retries", syn::parse_quote!(1)),
            ("timeout", syn::parse_quote!("1s")),
            ("stdout", syn::parse_quote!(true)),
            ("label", syn::parse_quote!("l")),
        ] {
            assert!(
                check(&mut foreach, name, value).is_some_and(|r| r.is_ok()),
                "{name}"
            );
        }
        foreach.set("errors", quote!(E));
        let names: Vec<String> = quote!(#foreach)
            .into_iter()
            .filter_map(|t| match t {
                TokenTree::Ident(i) => Some(i.to_string()),
                _ => None,
            })
            .filter(|n| ALL.contains(&n.as_str()))
            .collect();
        assert_eq!(names, ALL);
    }

    #[test]
    fn escalation_takes_false_true_or_factors_from_1_to_100() {
        let mut foreach = Settings::of_foreach();
        for good in [
            syn::parse_quote!(false),
            syn::parse_quote!(true),
            syn::parse_quote!((mem = 2.0, time = 1.5)),
            syn::parse_quote!((time = 3)),
        ] {
            let mut s = Settings::of_foreach();
            assert!(check(&mut s, "escalate", good).is_some_and(|r| r.is_ok()));
        }
        for bad in [
            syn::parse_quote!((mem = 0.5)),
            syn::parse_quote!((cpus = 2.0)),
            syn::parse_quote!("double"),
        ] {
            let e = check(&mut foreach, "escalate", bad).unwrap().unwrap_err();
            assert!(e.to_string().contains("escalate"), "{e}");
        }
    }

    #[test]
    fn timeouts_are_rounded_to_milliseconds() {
        let mut settings = Settings::of_future();
        let checked = check(&mut settings, "timeout", syn::parse_quote!(" 1.5ms "));
        assert!(checked.is_some_and(|r| r.is_ok()));
        let written = quote!(#settings).to_string();
        assert!(written.contains("from_millis (2u64)"), "{written}");
        assert!(written.contains("String :: from (\"1.5ms\")"), "{written}");
    }
}
