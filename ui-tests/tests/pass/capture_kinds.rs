// Captures that own their data pass the sendability check whatever their
// shape: generic, nested containers, inferred numbers, unsized behind `&`,
// and elements of the common shapes (`enumerate()`, `zip`, map entries).
use futurize::prelude::*;
use serde::{Serialize, de::DeserializeOwned};
use std::collections::{BTreeMap, HashMap};

#[derive(serde::Serialize, serde::Deserialize, Clone)]
struct Config {
    scale: f64,
}

fn generic<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static>(
    one: T,
    many: Vec<T>,
    borrowed: &[T],
) -> usize {
    let f = future!({
        let _ = (one.clone(), many.clone());
        many.len() + borrowed.len()
    });
    let each: Vec<usize> = foreach!(i in 0..2usize => i + many.len() + borrowed.len() %dofuture%)
        .unwrap();
    f.value().unwrap() + each.len()
}

fn main() {
    let n = 5;
    let x = 2.5;
    let words = vec![String::from("a"), String::from("bc")];
    let table: HashMap<String, Vec<f64>> = HashMap::from([("k".into(), vec![1.0])]);
    let tree: BTreeMap<u8, (String, Option<u32>)> = BTreeMap::from([(1, ("v".into(), None))]);
    let boxed: Box<str> = "boxed".into();
    let array = [1u8, 2, 3];
    let cfg = Config { scale: 2.0 };
    let pair = (7u16, String::from("seven"));
    let text: &str = "text";
    let slice: &[String] = &words;
    let f = future!(
        n + words.len()
            + table.len()
            + tree.len()
            + boxed.len()
            + array.len()
            + pair.1.len()
            + text.len()
            + slice.len()
            + (x * cfg.scale) as usize
    );
    assert_eq!(f.value().unwrap(), 5 + 2 + 1 + 1 + 5 + 3 + 5 + 4 + 2 + 5);
    let lens: Vec<usize> =
        foreach!((i, w) in words.iter().enumerate() => i + w.len() + n + table.len() %dofuture%)
            .unwrap();
    assert_eq!(lens, vec![7, 9]);
    let keys: Vec<usize> = foreach!((k, v) in table.iter() => k.len() + v.len() %dofuture%).unwrap();
    assert_eq!(keys, vec![2]);
    let zipped: Vec<f64> =
        foreach!((a, w) in array.iter().zip(words.iter()) => f64::from(*a) * w.len() as f64 %dofuture%)
            .unwrap();
    assert_eq!(zipped, vec![1.0, 4.0]);
    assert_eq!(generic(1u8, vec![2, 3], &[4]), 3 + 2);
}
