//! Numbers for the tests that check values bit for bit.
#![allow(dead_code)]

/// Floats with every special value, NaNs with payloads among them.
pub(crate) fn floats(len: usize) -> Vec<f64> {
    let specials = [
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7ff0_0000_0000_0001),
        f64::from_bits(0xfff8_dead_beef_cafe),
        -0.0,
        f64::INFINITY,
        f64::MIN_POSITIVE / 2.0,
    ];
    (0..len)
        .map(|i| specials.get(i % 11).copied().unwrap_or(i as f64 * 0.25))
        .collect()
}

/// The bits of each float, to compare NaNs too.
pub(crate) fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}
