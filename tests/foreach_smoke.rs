use futurize::prelude::*;

#[derive(serde::Serialize, serde::Deserialize, Clone)]
struct Config {
    scale: f64,
}

fn analysis(xs: &[f64], cfg: &Config) -> Result<Vec<f64>, futurize::Error> {
    let k = 2.0;
    foreach!(x in xs => x * cfg.scale * k %dofuture%)
}

#[test]
fn smoke() {
    let cfg = Config { scale: 3.0 };
    let xs = vec![1.0, 2.0, 3.0];
    for p in [
        futurize::Plan::from(Sequential),
        Multithread::workers(2).into(),
        Multiprocess::workers(2).into(),
    ] {
        let _g = with_plan(p);
        assert_eq!(analysis(&xs, &cfg).unwrap(), vec![6.0, 12.0, 18.0]);
        let names = vec!["a".to_string(), "bb".to_string()];
        let total: usize = foreach!(i in 0..4usize, n in names.iter().cycle() => i * n.len() %dofuture% combine = |a, b| a + b).unwrap();
        assert_eq!(total, 0 + 2 + 2 + 6);
        let seq: Vec<usize> = foreach!(n in &names => n.len() %do%).unwrap();
        assert_eq!(seq, vec![1, 2]);
    }
}
