//! Values whose numbers take one byte each on the wire still decode: the
//! bound on what a decode may claim leaves room for their size in memory.

#[test]
fn many_small_numbers_decode() {
    let v: Vec<u64> = (0..20_000u64).map(|i| i % 100).collect();
    let bytes = futurize_runtime::codec::encode(&v, "v").unwrap();
    assert!(bytes.len() < 25_000);
    let back: Vec<u64> = futurize_runtime::codec::decode(&bytes, "v").unwrap();
    assert_eq!(back, v);
    let w: Vec<u128> = (0..5_000u128).map(|i| i % 50).collect();
    let bytes = futurize_runtime::codec::encode(&w, "w").unwrap();
    let back: Vec<u128> = futurize_runtime::codec::decode(&bytes, "w").unwrap();
    assert_eq!(back, w);
}
