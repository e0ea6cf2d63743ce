use futurize::prelude::*;

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
struct Config { scale: f64, name: String }

fn slow_sum(xs: &[f64], cfg: &Config) -> f64 {
    let f = future!(xs.iter().sum::<f64>() * cfg.scale);
    f.value().unwrap()
}

#[test]
fn smoke() {
    let cfg = Config { scale: 2.0, name: "a".into() };
    let xs = vec![1.0, 2.0];
    assert_eq!(slow_sum(&xs, &cfg), 6.0);
    let n = 3;
    let s = String::from("hi");
    let f = future!({ let t = format!("{s}{n}"); t });
    assert_eq!(f.value().unwrap(), "hi3");
    let _g = with_plan(Multithread::workers(2));
    let v = vec![3, 1, 2];
    let f = future!({ let mut v = v; v.sort(); v }, label = "sorter");
    assert_eq!(f.value().unwrap(), vec![1, 2, 3]);
    assert_eq!(v, vec![3, 1, 2]);
}
