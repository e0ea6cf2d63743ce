// Captures keep their types: `&str`, `&[f64]`, `&Config` and `&self` inside the body.
use futurize::prelude::*;

#[derive(serde::Serialize, serde::Deserialize)]
struct Config {
    scale: f64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Model {
    weight: f64,
}

impl Model {
    fn score(&self, xs: &[f64], name: &str, cfg: &Config) -> Future<(f64, usize)> {
        future!((xs.iter().sum::<f64>() * cfg.scale * self.weight, name.len()))
    }
}

fn main() {
    let m = Model { weight: 2.0 };
    let cfg = Config { scale: 0.5 };
    assert_eq!(m.score(&[1.0, 3.0], "abc", &cfg).value().unwrap(), (4.0, 3));
}
