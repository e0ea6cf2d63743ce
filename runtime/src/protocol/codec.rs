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

/// The default size limit of one frame (captures, value, message): 1 GiB.
pub const DEFAULT_MAX_FRAME_BYTES: u64 = 1 << 30;

/// The frame size limit in force: `FUTURIZE_MAX_FRAME_BYTES` (a whole
/// number of bytes, 1 to 1 TiB), else [`DEFAULT_MAX_FRAME_BYTES`]. Any other
/// value of the variable is an `Error::Setting` where a plan's backend
/// starts (see `protocol/environment.rs`).
///
/// ```
/// assert!(futurize_runtime::codec::max_frame_bytes() >= 1);
/// ```
pub fn max_frame_bytes() -> u64 {
    crate::protocol::environment::MAX_FRAME_BYTES.value()
}

const CONFIG: bincode::config::Configuration = bincode::config::standard();

/// Appends a value's bytes to `bytes` (a buffer used again and again, for
/// many small values); `what` names it in the error.
pub fn encode_append<T: Serialize + ?Sized>(
    value: &T,
    bytes: &mut Vec<u8>,
    what: &str,
) -> Result<(), Error> {
    bincode::serde::encode_into_std_write(value, bytes, CONFIG)
        .map(|_| ())
        .map_err(|e| Error::Protocol(format!("could not serialize {what}: {e}")))
}

/// Encodes a value; `what` names it in the error when it is too large or its
/// `Serialize` implementation fails.
///
/// The size is measured first and the bytes written into a buffer of
/// exactly that size (with huge pages when large, see
/// [`bulk`](super::bulk)): a large capture is written once, never regrown.
pub fn encode<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<Vec<u8>, Error> {
    let failed = |e: bincode::error::EncodeError| {
        Error::Protocol(format!("could not serialize {what}: {e}"))
    };
    let mut size = bincode::enc::write::SizeWriter::default();
    bincode::serde::encode_into_writer(value, &mut size, CONFIG).map_err(failed)?;
    let limit = max_frame_bytes();
    if size.bytes_written as u64 > limit {
        return Err(Error::TooLarge {
            what: what.to_string(),
            size: size.bytes_written as u64,
            limit,
        });
    }
    let mut bytes = super::bulk::encode_buffer(size.bytes_written);
    bincode::serde::encode_into_std_write(value, &mut bytes, CONFIG).map_err(failed)?;
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

/// The bytes left to decode: bincode's `Reader` over a slice, whose remaining
/// length tells how many bytes a decode left over. As a `BorrowReader` it
/// lends slices of the input, so bulk data ([`bulk`](super::bulk)) is copied
/// once, straight into its typed buffer.
struct Remaining<'a>(&'a [u8]);

impl bincode::de::read::Reader for Remaining<'_> {
    fn read(&mut self, bytes: &mut [u8]) -> Result<(), bincode::error::DecodeError> {
        let head = self.take(bytes.len())?;
        bytes.copy_from_slice(head);
        Ok(())
    }
}

impl<'a> bincode::de::read::BorrowReader<'a> for Remaining<'a> {
    fn take_bytes(&mut self, length: usize) -> Result<&'a [u8], bincode::error::DecodeError> {
        self.take(length)
    }
}

impl<'a> Remaining<'a> {
    fn take(&mut self, length: usize) -> Result<&'a [u8], bincode::error::DecodeError> {
        let Some((head, rest)) = self.0.split_at_checked(length) else {
            return Err(bincode::error::DecodeError::UnexpectedEnd {
                additional: length - self.0.len(),
            });
        };
        self.0 = rest;
        Ok(head)
    }
}

/// Decodes a value that [`encode`] produced. Trailing bytes are an error, so a
/// mismatch between the leader's and the worker's idea of a type is caught.
///
/// A string or byte buffer claims its length (and bincode allocates it)
/// before its bytes are read, so the claims are limited to the input's own
/// length: no length inside the bytes can make a decode allocate more than
/// 16 times the bytes it was given.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Error> {
    use bincode::de::{BorrowDecode, Decoder, DecoderImpl};
    let failed =
        |e: bincode::error::DecodeError| Error::Protocol(format!("could not decode {what}: {e}"));
    let config = CONFIG.with_limit::<DECODE_ALLOCATION_LIMIT>();
    let mut decoder = DecoderImpl::new(Remaining(bytes), config, ());
    // bincode claims a string's or byte buffer's length, and each number's
    // size in memory (up to 16 bytes for at least one byte of input): claims
    // past 16 times the input's length are a corrupt or hostile length.
    let allowed = bytes.len().saturating_mul(16).min(DECODE_ALLOCATION_LIMIT);
    decoder
        .claim_bytes_read(DECODE_ALLOCATION_LIMIT - allowed)
        .map_err(failed)?;
    let bincode::serde::BorrowCompat(value) =
        bincode::serde::BorrowCompat::<T>::borrow_decode(&mut decoder).map_err(failed)?;
    let left = decoder.reader().0.len();
    if left != 0 {
        return Err(Error::Protocol(format!(
            "could not decode {what}: {left} trailing bytes"
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
