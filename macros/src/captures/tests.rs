//! The capture walk, case by case.

use super::macro_args::comma_separated;
use super::*;
use proc_macro2::TokenStream;
use quote::quote;

fn captures(tokens: TokenStream) -> Vec<String> {
    let e = exprs(tokens).remove(0);
    walk(&e).captures.iter().map(|i| i.to_string()).collect()
}

#[test]
fn free_variables_in_order_and_once() {
    assert_eq!(
        captures(quote!(xs.iter().sum::<f64>() + y * xs.len() as f64)),
        ["xs", "y"]
    );
}

#[test]
fn block_scoping_and_shadowing() {
    assert_eq!(
        captures(quote!(
            {
                let y = 1;
                y
            } + y
        )),
        ["y"]
    );
    assert_eq!(
        captures(quote!({
            let x = x + 1;
            x
        })),
        ["x"]
    );
}

#[test]
fn patterns_bind() {
    assert_eq!(
        captures(quote!({
            for (i, v) in vs.iter().enumerate() {
                t += i;
            }
        })),
        ["vs", "t"]
    );
    assert_eq!(
        captures(quote!(match o {
            Some(v) if v > k => v,
            None => d,
            _ => 0,
        })),
        ["o", "k", "d"]
    );
    assert_eq!(
        captures(quote!(if let Some(v) = o { v } else { v })),
        ["o", "v"]
    );
    assert_eq!(captures(quote!(|a, (b, _c)| a + b + k)), ["k"]);
}

#[test]
fn items_and_callees_are_not_captures() {
    assert_eq!(
        captures(quote!(
            helper(x) + MAX + Config::default().n + std::f64::consts::PI + N
        )),
        ["x"]
    );
}

#[test]
fn callees_the_body_does_not_bind_are_recorded_once() {
    let e = exprs(quote!({
        let local = |y: f64| y;
        model(local(x)) + T::f(x) + helper(x) + model(x) + (|g: fn(f64) -> f64| g(x))(h)
    }))
    .remove(0);
    let found = walk(&e);
    let names = |idents: &[Ident]| idents.iter().map(|i| i.to_string()).collect::<Vec<_>>();
    assert_eq!(names(&found.callees), ["model", "helper"]);
    assert_eq!(names(&found.captures), ["x", "h"]);
}

#[test]
fn macros_and_format_strings() {
    assert_eq!(
        captures(quote!(format!("{a} {b:?} {:w$}", c))),
        ["a", "b", "w", "c"]
    );
    assert_eq!(captures(quote!(vec![v; n])), ["v", "n"]);
    assert_eq!(
        captures(quote!(matches!(o, Some(q) if q > lim))),
        ["o", "lim"]
    );
    assert_eq!(
        captures(quote!(my_macro!(alpha, beta.gamma, delta(1)))),
        ["alpha", "beta"]
    );
}

#[test]
fn nested_foreach_binds_its_patterns_and_names_no_options() {
    assert_eq!(
        captures(quote!({
            let pids: Vec<u32> = futurize::foreach!(_i in 0..12u32 => {
                std::process::id()
            } %dofuture% chunk_size = 1)
            .unwrap();
            pids
        })),
        [] as [&str; 0]
    );
    assert_eq!(
        captures(quote!(
            foreach!(i in 0..n => i * k %dofuture% chunk_size = c, label = name)
        )),
        ["n", "k", "c", "name"]
    );
    assert_eq!(
        captures(quote!(
            ::futurize::foreach!((a, b) in xs.iter().zip(ys), c in zs => a + b + c + w %do%)
        )),
        ["xs", "ys", "zs", "w"]
    );
    // The patterns bind inside the nested body only.
    assert_eq!(
        captures(quote!({
            let v = foreach!(x in xs => x %do%);
            x
        })),
        ["xs", "x"]
    );
}

#[test]
fn nested_option_values_are_walked() {
    assert_eq!(
        captures(quote!(
            foreach!(x in xs => x %dofuture% combine = |a, b| a + b + bias)
        )),
        ["xs", "bias"]
    );
    let e = exprs(quote!(
        foreach!(x in xs => x %dofuture% resources = (cpus = ncpu, mem = "2G"), globals = [g])
    ))
    .remove(0);
    let f = walk(&e);
    let names: Vec<String> = f.captures.iter().map(|i| i.to_string()).collect();
    assert_eq!(names, ["xs", "ncpu", "g"]);
    assert!(f.writes.is_empty());
    assert_eq!(
        captures(quote!(futurize::future!(
            a + b,
            label = tag,
            seed = s,
            lazy = true
        ))),
        ["a", "b", "tag", "s"]
    );
}

#[test]
fn nested_futures_and_deeper_nesting() {
    assert_eq!(
        captures(quote!(future!({
            let t = 1;
            t + u
        }))),
        ["u"]
    );
    assert_eq!(
        captures(quote!(future!(
            foreach!(i in 0..4 => future!(i * k).value().unwrap() %dofuture%).unwrap()
        ))),
        ["k"]
    );
}

#[test]
fn nested_exits_and_generators_are_the_nested_macros_own() {
    let e = exprs(quote!(foreach!(x in xs => {
        if x > 0 {
            return 1;
        }
        let v = f()?;
        rng().next_u64() + v
    } %dofuture% seed = 1)))
    .remove(0);
    let f = walk(&e);
    assert!(f.exits.is_empty());
    assert!(f.random_calls.is_empty());
    // A write to a variable from outside is the outer body's write too.
    let e = exprs(quote!(future!({
        t += 1;
    })))
    .remove(0);
    let writes: Vec<String> = walk(&e).writes.iter().map(|i| i.to_string()).collect();
    assert_eq!(writes, ["t"]);
    // Random generators in the iterables run in the outer body.
    let e = exprs(quote!(foreach!(x in vec![rng().next_u64()] => x %do%))).remove(0);
    assert_eq!(walk(&e).random_calls.len(), 1);
}

#[test]
fn nested_calls_off_the_grammar_are_scanned() {
    assert_eq!(
        captures(quote!(foreach!(x in xs => x %dopar%))),
        ["x", "xs", "dopar"]
    );
    assert_eq!(
        captures(quote!(other::foreach!(x in xs => x %dofuture%))),
        ["x", "xs", "dofuture"]
    );
}

#[test]
fn writes_and_exits_are_found() {
    let e = exprs(quote!({
        x = 1;
        y += 2;
        let mut z = 0;
        z += 1;
        w.push(1);
        loop {
            break;
        }
    }))
    .remove(0);
    let f = walk(&e);
    let writes: Vec<String> = f.writes.iter().map(|i| i.to_string()).collect();
    assert_eq!(writes, ["x", "y"]);
    let calls: Vec<(String, String)> = (f.mutating_calls.iter())
        .map(|(i, m)| (i.to_string(), m.clone()))
        .collect();
    assert_eq!(calls, [("w".to_string(), "push".to_string())]);
    assert!(f.exits.is_empty());
    let e = exprs(quote!({
        let v = a?;
        if v {
            return 1;
        }
        break;
    }))
    .remove(0);
    let exits: Vec<&str> = walk(&e).exits.iter().map(|(_, w)| *w).collect();
    assert_eq!(exits, ["?", "return", "break"]);
    let e = exprs(quote!(
        xs.iter()
            .map(|x| {
                if *x > 0 {
                    return 1;
                }
                2
            })
            .sum::<i32>()
    ))
    .remove(0);
    assert!(walk(&e).exits.is_empty());
}

#[test]
fn self_is_noted_not_captured() {
    let e = exprs(quote!(self.total + k)).remove(0);
    let f = walk(&e);
    assert!(f.self_span.is_some());
    assert_eq!(f.captures.len(), 1);
}

pub(super) fn exprs(tokens: TokenStream) -> Vec<Expr> {
    syn::parse::Parser::parse2(comma_separated, tokens).expect("expressions")
}
