// A captured reference stays a reference in the body: moving out of it fails as it
// would in place. Fix: clone the field (`cfg.name.clone()`).
use futurize::prelude::*;

#[derive(serde::Serialize, serde::Deserialize)]
struct Config {
    name: String,
}

fn label_of(cfg: &Config) -> Future<String> {
    future!({
        let s: String = cfg.name;
        s
    })
}

fn main() {
    let cfg = Config { name: "a".into() };
    let _ = label_of(&cfg);
}
