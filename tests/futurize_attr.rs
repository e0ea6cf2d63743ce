//! `#[futurize]`: annotated functions give the same results as written, on
//! every plan.

use futurize::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Param {
    n: u32,
    weight: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Summary {
    n: u32,
    value: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Config {
    scale: f64,
}

fn run_one(p: &Param, config: &Config) -> Summary {
    let value = (1..=p.n).map(f64::from).sum::<f64>() * p.weight * config.scale;
    Summary { n: p.n, value }
}

#[futurize]
fn simulate(params: &[Param], config: &Config) -> Vec<Summary> {
    params.iter().map(|p| run_one(p, config)).collect()
}

fn simulate_plain(params: &[Param], config: &Config) -> Vec<Summary> {
    params.iter().map(|p| run_one(p, config)).collect()
}

#[futurize(chunk_size = 3, label = "stats")]
fn statistics(xs: &[f64], shift: f64) -> (f64, f64, usize, Vec<f64>, f64) {
    let total: f64 = xs.iter().map(|x| x + shift).sum();
    let product = (1..6u32).map(|i| f64::from(i) * shift).product::<f64>();
    let positive = xs
        .iter()
        .filter_map(|x| if *x > 0.0 { Some(*x) } else { None })
        .count();
    let doubled = xs
        .iter()
        .flat_map(|x| vec![*x, *x * 2.0])
        .collect::<Vec<f64>>();
    let folded = xs.into_iter().map(|x| x * x).fold(0.0, |a, b| a + b);
    (total, product, positive, doubled, folded)
}

fn square(x: &u64) -> u64 {
    x * x
}

// `self` is captured, so the model travels to workers: it must be serializable.
#[derive(Serialize, Deserialize)]
struct Model {
    coefficients: Vec<f64>,
}

impl Model {
    #[futurize]
    fn predict(&self, inputs: &[f64]) -> Vec<f64> {
        let untouched: Vec<f64> = self.coefficients.iter().map(|c| c * 1.0).rev().collect();
        let _ = untouched;
        inputs
            .iter()
            .map(|x| self.coefficients.iter().fold(0.0, |acc, c| acc * x + c))
            .collect()
    }
}

#[futurize]
fn generic_lengths<T: Serialize + serde::de::DeserializeOwned + Clone + Sync + Send + 'static>(
    items: &[Vec<T>],
) -> Vec<usize> {
    items.iter().map(|v| v.len()).collect()
}

#[futurize]
fn squares(xs: &[u64]) -> u64 {
    xs.iter().map(square).reduce(|a, b| a + b).unwrap_or(0)
}

#[test]
fn annotated_functions_give_the_plain_results_on_every_plan() {
    let params: Vec<Param> = (1..=20).map(|n| Param { n, weight: 0.5 }).collect();
    let config = Config { scale: 2.0 };
    let xs: Vec<f64> = (-5..15).map(f64::from).collect();
    for p in [
        futurize::Plan::from(Sequential),
        Multithread::workers(2).into(),
        Multiprocess::workers(2).into(),
    ] {
        let _g = with_plan(p.clone());
        assert_eq!(
            simulate(&params, &config),
            simulate_plain(&params, &config),
            "{p}"
        );
        let (total, product, positive, doubled, folded) = statistics(&xs, 1.0);
        assert_eq!(total, xs.iter().map(|x| x + 1.0).sum::<f64>(), "{p}");
        assert_eq!(product, 120.0);
        assert_eq!(positive, 14);
        assert_eq!(doubled.len(), 40);
        assert_eq!(&doubled[..4], &[-5.0, -10.0, -4.0, -8.0]);
        assert_eq!(folded, xs.iter().map(|x| x * x).sum::<f64>());
        let model = Model {
            coefficients: vec![1.0, 2.0, 3.0],
        };
        assert_eq!(model.predict(&[0.0, 1.0, 2.0]), vec![3.0, 6.0, 11.0], "{p}");
        assert_eq!(
            generic_lengths(&[vec![1u8], vec![], vec![2, 3]]),
            vec![1, 0, 2]
        );
        assert_eq!(squares(&[1, 2, 3]), 14);
    }
}

#[futurize]
fn fails_on_three(xs: &[u32]) -> Vec<u32> {
    xs.iter()
        .map(|x| {
            if *x == 3 {
                panic!("three is not allowed")
            } else {
                *x
            }
        })
        .collect()
}

#[test]
fn an_element_panic_is_a_panic_of_the_function() {
    let _g = with_plan(Multithread::workers(2));
    let r = std::panic::catch_unwind(|| fails_on_three(&[1, 2, 3, 4]));
    let message = r.unwrap_err().downcast::<String>().unwrap();
    assert!(message.contains("element 2"), "{message}");
    assert!(message.contains("three is not allowed"), "{message}");
}

#[test]
fn without_a_result_the_panic_says_how_to_get_the_error_as_a_value() {
    let _g = with_plan(Multithread::workers(2));
    let r = std::panic::catch_unwind(|| fails_on_three(&[3]));
    let message = r.unwrap_err().downcast::<String>().unwrap();
    assert!(
        message.contains("`#[futurize]` on `fails_on_three`"),
        "{message}"
    );
    assert!(message.contains("From<futurize::Error>"), "{message}");
}

#[derive(Debug)]
enum AnalysisError {
    Futurize(futurize::Error),
}

impl From<futurize::Error> for AnalysisError {
    fn from(e: futurize::Error) -> Self {
        AnalysisError::Futurize(e)
    }
}

#[futurize]
fn checked_doubles(xs: &[u32]) -> Result<Vec<u32>, AnalysisError> {
    let doubled: Vec<u32> = xs
        .iter()
        .map(|x| {
            if *x == 3 {
                panic!("three is not allowed")
            } else {
                x * 2
            }
        })
        .collect();
    Ok(doubled)
}

#[futurize]
fn boxed_doubles(xs: &[u32]) -> Result<Vec<u32>, Box<dyn std::error::Error>> {
    Ok(xs
        .iter()
        .map(|x| {
            if *x == 3 {
                panic!("three again")
            } else {
                x * 2
            }
        })
        .collect())
}

#[test]
fn an_element_panic_travels_through_the_functions_result() {
    for plan in [
        futurize::Plan::from(Sequential),
        Multithread::workers(2).into(),
    ] {
        let _g = with_plan(plan);
        assert_eq!(checked_doubles(&[1, 2]).unwrap(), vec![2, 4]);
        match checked_doubles(&[1, 3, 4]) {
            Err(AnalysisError::Futurize(futurize::Error::Panicked { index, .. })) => {
                assert_eq!(index, Some(1))
            }
            other => panic!("expected the element's panic as a value, got {other:?}"),
        }
        let e = boxed_doubles(&[3]).unwrap_err();
        assert!(e.to_string().contains("three again"), "{e}");
    }
}

#[futurize]
fn strings_error(xs: &[u32]) -> Result<Vec<u32>, String> {
    Ok(xs
        .iter()
        .map(|x| {
            if *x == 3 {
                panic!("no From for String")
            } else {
                *x
            }
        })
        .collect())
}

#[test]
fn an_error_type_without_from_still_panics_saying_why() {
    let _g = with_plan(Multithread::workers(2));
    assert_eq!(strings_error(&[1]).unwrap(), vec![1]);
    let r = std::panic::catch_unwind(|| strings_error(&[3]));
    let message = r.unwrap_err().downcast::<String>().unwrap();
    assert!(message.contains("no From for String"), "{message}");
    assert!(
        message.contains("implement `From<futurize::Error>`"),
        "{message}"
    );
}

trait Predict {
    fn predict(&self, x: f64) -> f64;
}

#[derive(Serialize, Deserialize)]
struct Line {
    slope: f64,
}

impl Predict for Line {
    fn predict(&self, x: f64) -> f64 {
        self.slope * x
    }
}

// The bounds the compile error for a generic function asks for are enough.
#[futurize]
fn predict_all<M: Predict + Serialize + serde::de::DeserializeOwned + Sync + 'static>(
    model: &M,
    xs: &[f64],
) -> Vec<f64> {
    xs.iter().map(|x| model.predict(*x)).collect()
}

#[test]
fn a_generic_function_with_the_bounds_the_error_asks_for_runs() {
    let _g = with_plan(Multiprocess::workers(2));
    assert_eq!(
        predict_all(&Line { slope: 2.0 }, &[1.0, 2.0]),
        vec![2.0, 4.0]
    );
}
