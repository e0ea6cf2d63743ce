//! The one place that turns values into bytes and back.
//!
//! Everything that crosses from the leader to a worker (captures, values,
//! protocol messages) goes through [`encode`] and [`decode`], which wrap
//! bincode 2 with its serde support. Decoding never trusts its input: a
//! length inside the bytes can never make it allocate more than
//! [`max_frame_bytes`], and truncated or corrupt bytes are an
//! [`Error::Protocol`], never a panic.

use crate::Error;
use serde::{Serialize, de::DeserializeOwned};
use std::sync::OnceLock;

/// The default size limit of one frame (captures, value, message): 1 GiB.
pub const DEFAULT_MAX_FRAME_BYTES: u64 = 1 << 30;

/// The frame size limit in force: `FUTURIZE_MAX_FRAME_BYTES` when set to a
/// positive number of bytes, else [`DEFAULT_MAX_FRAME_BYTES`].
///
/// ```
/// assert!(futurize_runtime::codec::max_frame_bytes() >= 1);
/// ```
pub fn max_frame_bytes() -> u64 {
    static LIMIT: OnceLock<u64> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var("FUTURIZE_MAX_FRAME_BYTES")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(DEFAULT_MAX_FRAME_BYTES)
    })
}

const CONFIG: bincode::config::Configuration = bincode::config::standard();

/// Encodes a value; `what` names it in the error when it is too large or its
/// `Serialize` implementation fails.
pub fn encode<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<Vec<u8>, Error> {
    let bytes = bincode::serde::encode_to_vec(value, CONFIG)
        .map_err(|e| Error::Protocol(format!("could not serialize {what}: {e}")))?;
    let limit = max_frame_bytes();
    if bytes.len() as u64 > limit {
        return Err(Error::TooLarge {
            what: what.to_string(),
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// The most memory one decode may claim for strings and byte buffers, whose
/// length prefixes bincode trusts before reading them: it bounds what a
/// corrupt or hostile length can make a decoder allocate (the fuzzer found
/// 8 bytes that asked for 4 GB under a larger limit). Sequences of other
/// values are not claimed: serde caps what they reserve up front. A single
/// `String` or byte buffer over 1 GiB inside a value therefore does not
/// decode.
const DECODE_ALLOCATION_LIMIT: usize = 1 << 30;

/// Decodes a value that [`encode`] produced. Trailing bytes are an error, so a
/// mismatch between the leader's and the worker's idea of a type is caught.
///
/// A string or byte buffer takes as many input bytes as it claims, so what
/// one decode may claim is bounded by the input's length, rounded up to one
/// of three sizes (bincode takes the bound as a constant): a short frame
/// cannot make a decoder allocate more than 64 KiB however long a length
/// inside it claims (the fuzzer found 16 bytes that claimed 512 MiB).
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Error> {
    const SMALL: usize = 64 << 10;
    const MEDIUM: usize = 16 << 20;
    match bytes.len() {
        0..=SMALL => decode_within::<T, SMALL>(bytes, what),
        n if n <= MEDIUM => decode_within::<T, MEDIUM>(bytes, what),
        _ => decode_within::<T, DECODE_ALLOCATION_LIMIT>(bytes, what),
    }
}

fn decode_within<T: DeserializeOwned, const CLAIMS: usize>(
    bytes: &[u8],
    what: &str,
) -> Result<T, Error> {
    let config = CONFIG.with_limit::<CLAIMS>();
    let (value, used) = bincode::serde::decode_from_slice::<T, _>(bytes, config)
        .map_err(|e| Error::Protocol(format!("could not decode {what}: {e}")))?;
    if used != bytes.len() {
        return Err(Error::Protocol(format!(
            "could not decode {what}: {} trailing bytes",
            bytes.len() - used
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_references_as_owned() {
        let xs = [1.5f64, 2.5];
        let s = "hi";
        let bytes = encode(&(&xs[..], s), "captures").unwrap();
        let (v, t): (Vec<f64>, String) = decode(&bytes, "captures").unwrap();
        assert_eq!(v, vec![1.5, 2.5]);
        assert_eq!(t, "hi");
    }

    #[test]
    fn truncated_and_trailing_bytes_are_protocol_errors() {
        let bytes = encode(&(1u64, String::from("abc")), "x").unwrap();
        for cut in 0..bytes.len() {
            let r = decode::<(u64, String)>(&bytes[..cut], "x");
            assert!(matches!(r, Err(Error::Protocol(_))), "cut {cut}: {r:?}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            matches!(decode::<(u64, String)>(&longer, "x"), Err(Error::Protocol(m)) if m.contains("trailing"))
        );
    }

    #[test]
    fn a_huge_string_claim_in_a_short_input_is_refused() {
        // Found by the fuzzer: a String claiming 0xfff7fcf7 bytes, with 3 present.
        let bytes = [0u8, 252, 247, 252, 247, 255, 240, 252];
        let r = decode::<(Vec<f64>, String, Option<u64>)>(&bytes, "x");
        assert!(matches!(r, Err(Error::Protocol(_))), "{r:?}");
    }

    #[test]
    fn hostile_length_prefix_does_not_allocate_or_panic() {
        // A Vec<u8> claiming u64::MAX elements, followed by nothing.
        let mut bytes = vec![253u8];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decode::<Vec<u8>>(&bytes, "x"),
            Err(Error::Protocol(_))
        ));
    }
}
