// Every relay option together, with a `Duration` expression for `timeout`.
use futurize::prelude::*;

#[futurize(timeout = "1m", retries = 1, progress = true, stdout = false, label = "doubles")]
fn doubles(xs: &[u32]) -> Vec<u32> {
    xs.iter().map(|x| x * 2).collect()
}

fn main() {
    assert_eq!(doubles(&[1, 2]), vec![2, 4]);
    let limit = std::time::Duration::from_secs(60);
    let xs = vec![1u32, 2, 3];
    let ys: Vec<u32> = foreach!(x in &xs => {
        println!("x = {x}");
        progress!("at {x}");
        x + 1
    } %dofuture% timeout = limit, retries = 2, progress = false, stdout = true)
    .unwrap();
    assert_eq!(ys, vec![2, 3, 4]);
    let f = future!({ eprintln!("hello"); 1 }, timeout = "1h30m", stdout = false);
    assert_eq!(f.value().unwrap(), 1);
}
