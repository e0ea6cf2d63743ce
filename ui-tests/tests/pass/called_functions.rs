// Callees are `fn` items, called directly wherever the body runs: module-level,
// generic (at two types in one body), declared inside `main`, imported, a type
// parameter's function (what a caller chooses instead of passing a closure); a
// closure bound inside the body is the body's own. Under `#[futurize]` a variable
// that shares a name with a `fn` item only counts where it is in scope.
use futurize::prelude::*;
use std::cmp::max;

fn model(x: f64) -> f64 {
    2.0 * x + 1.0
}

fn twice<T: Into<f64>>(x: T) -> f64 {
    x.into() * 2.0
}

trait Model {
    fn eval(x: f64) -> f64;
}

struct Affine;

impl Model for Affine {
    fn eval(x: f64) -> f64 {
        model(x)
    }
}

#[futurize]
fn apply<M: Model>(xs: &[f64]) -> Vec<f64> {
    xs.iter().map(|x| M::eval(*x)).collect()
}

#[futurize]
fn fit(xs: &[f64]) -> Vec<f64> {
    {
        let model = |x: f64| x;
        assert_eq!(model(1.0), 1.0);
    }
    let ys: Vec<f64> = xs.iter().map(|x| model(*x) + twice(1u8)).collect();
    ys.iter().copied().map(model).collect()
}

fn main() {
    fn local_item(x: f64) -> f64 {
        x - 1.0
    }
    let xs = vec![1.0f64, 2.0];
    let ys: Vec<f64> = foreach!(x in &xs => {
        let square = |v: f64| v * v;
        square(model(*x)) + twice(*x) + twice(1u8) + local_item(*x) + max(1, 2) as f64
    } %dofuture%)
    .unwrap();
    assert_eq!(ys, vec![9.0 + 2.0 + 2.0 + 0.0 + 2.0, 25.0 + 4.0 + 2.0 + 1.0 + 2.0]);
    let f = future!(model(twice(2u8)) + local_item(1.0));
    assert_eq!(f.value().unwrap(), 9.0);
    assert_eq!(fit(&xs), vec![2.0 * 5.0 + 1.0, 2.0 * 7.0 + 1.0]);
    assert_eq!(apply::<Affine>(&xs), vec![3.0, 5.0]);
}
