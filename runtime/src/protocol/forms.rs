//! The cheapest form in which a body's value and a chunk's elements travel,
//! chosen by their type at run time ([`plain_type`](super::plain_type)):
//!
//! * a body's value that is a `Vec` of floats or of one-byte integers is
//!   written as its length and its memory in one piece ([`encode_value`],
//!   [`decode_value`]), byte for byte what bincode writes for it element by
//!   element, so a value kept in the cache by an earlier build reads back
//!   the same;
//! * the values of a chunk ([`chunk_values`], the `values` of a
//!   `ChunkOutput`) of a plain number type travel as their bytes;
//! * a chunk's elements of one binding of plain numbers
//!   ([`encode_elements`], [`decode_elements`]) travel as the bounds of
//!   their run when they are consecutive integers (a range's chunk), else
//!   as their bytes; any other elements through serde. The first byte of
//!   the payload says which form follows.
//!
//! Both sides of a chunk or a value run the same build (the handshake
//! compares build ids), so they agree on the type and on its form.

use super::bulk::{Plain, as_bytes, encode_buffer, vec_from_bytes};
use super::codec;
use super::plain_type::{
    WithPlain, cast_into, cast_ref, cast_slice, is_plain, with_plain, with_plain_in_tuple,
    with_plain_ref_in_tuple, with_plain_vec,
};
use crate::Error;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::DeserializeOwned};
use std::marker::PhantomData;

/// A length as bincode's varint writes it.
fn write_length(len: u64, bytes: &mut Vec<u8>) {
    match len {
        0..=250 => bytes.push(len as u8),
        251..=0xffff => {
            bytes.push(251);
            bytes.extend_from_slice(&(len as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            bytes.push(252);
            bytes.extend_from_slice(&(len as u32).to_le_bytes());
        }
        _ => {
            bytes.push(253);
            bytes.extend_from_slice(&len.to_le_bytes());
        }
    }
}

/// A length written by bincode's varint, and the bytes after it.
fn read_length(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (&first, rest) = bytes.split_first()?;
    let wide = |n: usize| -> Option<(u64, &[u8])> {
        let (head, rest) = rest.split_at_checked(n)?;
        let mut le = [0u8; 8];
        le[..n].copy_from_slice(head);
        Some((u64::from_le_bytes(le), rest))
    };
    match first {
        0..=250 => Some((u64::from(first), rest)),
        251 => wide(2),
        252 => wide(4),
        253 => wide(8),
        _ => None,
    }
}

/// Whether a `Vec<P>` is written by bincode as its length and its memory.
fn raw_in_bincode<P: Plain>() -> bool {
    P::BINCODE_WRITES_RAW && cfg!(target_endian = "little")
}

struct EncodeVec<'a, R>(&'a R);

impl<R> WithPlain for EncodeVec<'_, R> {
    type Out = Option<Vec<u8>>;
    fn with<P: Plain>(self) -> Option<Vec<u8>> {
        let values: &Vec<P> = cast_ref(self.0)?;
        if !raw_in_bincode::<P>() {
            return None;
        }
        let memory = as_bytes(values);
        let mut bytes = encode_buffer(memory.len() + 9);
        write_length(values.len() as u64, &mut bytes);
        bytes.extend_from_slice(memory);
        Some(bytes)
    }
}

/// Encodes a body's value, as [`codec::encode`] would, and in one piece
/// when it is a `Vec` of floats or one-byte integers.
pub(crate) fn encode_value<R: Serialize>(value: &R, what: &str) -> Result<Vec<u8>, Error> {
    match with_plain_vec::<R, _>(EncodeVec(value)).flatten() {
        Some(bytes) if bytes.len() as u64 <= codec::max_frame_bytes() => Ok(bytes),
        _ => codec::encode(value, what),
    }
}

struct DecodeVec<'a, R>(&'a [u8], PhantomData<fn() -> R>);

impl<R> WithPlain for DecodeVec<'_, R> {
    type Out = Option<Result<R, String>>;
    fn with<P: Plain>(self) -> Self::Out {
        if !raw_in_bincode::<P>() {
            return None;
        }
        let Some((len, memory)) = read_length(self.0) else {
            return Some(Err("a length that does not read".into()));
        };
        let size = std::mem::size_of::<P>() as u64;
        if len.checked_mul(size) != Some(memory.len() as u64) {
            return Some(Err(format!(
                "{len} values of {size} bytes in {} bytes",
                memory.len()
            )));
        }
        let values: Vec<P> = vec_from_bytes(memory).expect("a whole number of values");
        cast_into(values).ok().map(Ok)
    }
}

/// Decodes a body's value that [`encode_value`] (or [`codec::encode`])
/// produced: a `Vec` of floats or one-byte integers with one copy.
pub(crate) fn decode_value<R: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<R, Error> {
    match with_plain_vec::<R, _>(DecodeVec(bytes, PhantomData)).flatten() {
        None => codec::decode(bytes, what),
        Some(Err(why)) => Err(Error::Protocol(format!("could not decode {what}: {why}"))),
        Some(Ok(value)) => Ok(value),
    }
}

/// The `values` of a chunk as they travel: serde's form, or their bytes in
/// one piece for plain numbers (`#[serde(with = "chunk_values")]`).
pub(crate) mod chunk_values {
    use super::*;

    struct Write<'a, R, S>(&'a [R], S);

    impl<R, S: Serializer> WithPlain for Write<'_, R, S> {
        type Out = Result<S::Ok, S::Error>;
        fn with<P: Plain>(self) -> Self::Out {
            let values: &[P] = cast_slice(self.0).expect("found to be plain");
            self.1.serialize_bytes(as_bytes(values))
        }
    }

    /// Writes `values`.
    pub(crate) fn serialize<R: Serialize, S: Serializer>(
        values: &[R],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        if is_plain::<R>() {
            return with_plain::<R, _>(Write(values, serializer)).expect("found to be plain");
        }
        values.serialize(serializer)
    }

    struct Read<'de, D, R>(D, PhantomData<fn() -> (&'de (), R)>);

    impl<'de, D: Deserializer<'de>, R> WithPlain for Read<'de, D, R> {
        type Out = Result<Vec<R>, D::Error>;
        fn with<P: Plain>(self) -> Self::Out {
            let values = super::super::bulk::BulkVec::<P>::deserialize(self.0)?;
            Ok(cast_into(values.0).ok().expect("found to be plain"))
        }
    }

    /// Reads what [`serialize`] wrote.
    pub(crate) fn deserialize<'de, R: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<R>, D::Error> {
        if is_plain::<R>() {
            return with_plain::<R, _>(Read(deserializer, PhantomData)).expect("found to be plain");
        }
        Vec::<R>::deserialize(deserializer)
    }
}

/// The first byte of a chunk's elements: which form follows.
const THROUGH_SERDE: u8 = 0;
const AS_BYTES: u8 = 1;
const AS_BOUNDS: u8 = 2;

struct EncodeElements<'a, T>(&'a [T]);

impl<T> WithPlain for EncodeElements<'_, T> {
    type Out = Vec<u8>;
    fn with<P: Plain>(self) -> Vec<u8> {
        // The elements are `(P,)`, or `(&P,)` as a slice's `iter()` yields
        // them (read within the borrow of the elements, see
        // `with_plain_ref_in_tuple`).
        match cast_slice::<T, (P,)>(self.0) {
            Some(owned) => plain_elements(owned.iter().map(|e| e.0)),
            None => plain_elements(
                cast_slice::<T, (&'static P,)>(self.0)
                    .expect("found to be (P,) or (&P,)")
                    .iter()
                    .map(|e| *e.0),
            ),
        }
    }
}

/// The elements `values` as the bounds of their run when they are
/// consecutive integers, else as their bytes.
fn plain_elements<P: Plain>(values: impl ExactSizeIterator<Item = P> + Clone) -> Vec<u8> {
    let len = values.len();
    let first = values.clone().next().and_then(P::as_index);
    if let Some(first) = first
        && (values.clone())
            .zip(0i128..)
            .all(|(v, i)| v.as_index() == Some(first + i))
    {
        return run_of_elements(first, len);
    }
    let size = std::mem::size_of::<P>();
    let mut bytes = encode_buffer(1 + len * size);
    bytes.push(AS_BYTES);
    for v in values {
        bytes.extend_from_slice(as_bytes(std::slice::from_ref(&v)));
    }
    bytes
}

/// The elements of a chunk that are the `len` consecutive integers from
/// `first`, of one binding, as they travel: their bounds.
pub(crate) fn run_of_elements(first: i128, len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(25);
    bytes.push(AS_BOUNDS);
    bytes.extend_from_slice(&first.to_le_bytes());
    bytes.extend_from_slice(&(len as u64).to_le_bytes());
    bytes
}

/// Encodes a chunk's elements (one tuple per element, one entry per
/// binding) in their cheapest form.
pub(crate) fn encode_elements<T: Serialize>(items: &[T], what: &str) -> Result<Vec<u8>, Error> {
    let one_plain = with_plain_in_tuple::<T, _>(EncodeElements(items))
        .or_else(|| with_plain_ref_in_tuple::<T, _>(EncodeElements(items)));
    if let Some(bytes) = one_plain {
        return Ok(bytes);
    }
    let mut bytes = vec![THROUGH_SERDE];
    codec::encode_append(items, &mut bytes, what)?;
    Ok(bytes)
}

struct DecodeElements<'a, O>(&'a [u8], u8, PhantomData<fn() -> O>);

impl<O> WithPlain for DecodeElements<'_, O> {
    type Out = Result<Vec<O>, String>;
    fn with<P: Plain>(self) -> Self::Out {
        let values: Vec<(P,)> = match self.1 {
            AS_BYTES => vec_from_bytes::<P>(self.0)
                .ok_or_else(|| format!("{} bytes are not whole values", self.0.len()))?
                .into_iter()
                .map(|v| (v,))
                .collect(),
            _ => {
                let (first, len) = self
                    .0
                    .split_at_checked(16)
                    .filter(|(_, len)| len.len() == 8)
                    .ok_or("bounds of a wrong length")?;
                let first = i128::from_le_bytes(first.try_into().expect("16 bytes"));
                let len = u64::from_le_bytes(len.try_into().expect("8 bytes"));
                let last = i128::from(len).checked_sub(1).map(|n| first + n);
                let start = P::from_index(first);
                let (Some(start), true) =
                    (start, len == 0 || last.and_then(P::from_index).is_some())
                else {
                    return Err(format!("bounds {first}+{len} outside the type"));
                };
                // Every value lies between two that fit, so none wraps.
                (0..len).map(|i| (start.after(i),)).collect()
            }
        };
        Ok(cast_into(values).ok().expect("found to be (P,)"))
    }
}

/// Decodes a chunk's elements that [`encode_elements`] wrote, as the
/// owned elements `O` a worker rebuilds.
pub(crate) fn decode_elements<O: DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> Result<Vec<O>, Error> {
    let failed = |why: String| Error::Protocol(format!("could not decode {what}: {why}"));
    let Some((&form, rest)) = bytes.split_first() else {
        return Err(failed("no form".into()));
    };
    match form {
        THROUGH_SERDE => codec::decode(rest, what),
        AS_BYTES | AS_BOUNDS => {
            with_plain_in_tuple::<O, _>(DecodeElements(rest, form, PhantomData))
                .ok_or_else(|| failed("plain numbers for elements that are not".into()))?
                .map_err(failed)
        }
        other => Err(failed(format!("an unknown form {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_written_as_bincode_writes_them() {
        for len in [0u64, 1, 250, 251, 0xffff, 0x1_0000, 0xffff_ffff, 1 << 40] {
            let mut mine = Vec::new();
            write_length(len, &mut mine);
            assert_eq!(mine, codec::encode(&len, "a length").unwrap(), "{len}");
            assert_eq!(read_length(&mine), Some((len, &[][..])));
        }
        assert_eq!(read_length(&[]), None);
        assert_eq!(read_length(&[252, 1, 2]), None, "cut short");
        assert_eq!(read_length(&[255]), None);
    }

    #[test]
    fn vectors_of_floats_and_bytes_are_written_byte_for_byte_as_serde_writes_them() {
        let floats: Vec<f64> = (0..300).map(|i| f64::from(i) * -0.7).collect();
        let odd = vec![f64::NAN, -0.0, f64::from_bits(0x7ff0_0000_0000_0001)];
        let singles = vec![1.5f32; 70_000];
        let bytes: Vec<u8> = (0..=255).collect();
        let signed: Vec<i8> = vec![-128, 0, 127];
        fn same<R: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: &R) {
            let fast = encode_value(v, "v").unwrap();
            assert_eq!(fast, codec::encode(v, "v").unwrap());
            let back: R = decode_value(&fast, "v").unwrap();
            assert_eq!(codec::encode(&back, "v").unwrap(), fast);
        }
        same(&floats);
        same(&odd);
        same(&singles);
        same(&bytes);
        same(&signed);
        same(&Vec::<f64>::new());
        // Other values take serde's way, and read back.
        same(&vec![1u64, 300, 70_000]);
        same(&(vec![1.0f64], 2u8));
        same(&String::from("text"));
    }

    #[test]
    fn a_value_that_does_not_fit_its_length_is_refused() {
        let mut bytes = encode_value(&vec![1.0f64; 4], "v").unwrap();
        bytes.pop();
        let r = decode_value::<Vec<f64>>(&bytes, "v");
        assert!(matches!(r, Err(Error::Protocol(m)) if m.contains("4 values of 8 bytes")));
        assert!(decode_value::<Vec<f64>>(&[], "v").is_err());
        assert!(decode_value::<Vec<f32>>(&[253, 1], "v").is_err());
    }

    #[derive(Serialize, Deserialize)]
    #[serde(bound(serialize = "R: Serialize", deserialize = "R: Deserialize<'de>"))]
    struct Values<R> {
        #[serde(with = "chunk_values")]
        values: Vec<R>,
        after: u8,
    }

    #[test]
    fn chunk_values_of_plain_numbers_travel_as_their_bytes() {
        let values = Values {
            values: vec![u64::MAX, 1, 2],
            after: 9,
        };
        let bytes = codec::encode(&values, "v").unwrap();
        assert_eq!(
            bytes.len(),
            1 + 24 + 1,
            "a length, the bytes, the next field"
        );
        let back: Values<u64> = codec::decode(&bytes, "v").unwrap();
        assert_eq!((back.values, back.after), (vec![u64::MAX, 1, 2], 9));
        let text = Values {
            values: vec![String::from("a")],
            after: 1,
        };
        let back: Values<String> = codec::decode(&codec::encode(&text, "v").unwrap(), "v").unwrap();
        assert_eq!(back.values, ["a"]);
        // Bytes that are not whole values are refused.
        let odd = codec::encode(&(super::super::bulk::BulkSlice(&[1u8, 2, 3][..]), 0u8), "v");
        assert!(codec::decode::<Values<u16>>(&odd.unwrap(), "v").is_err());
    }

    fn elements<T: Serialize, O: DeserializeOwned>(items: &[T]) -> (u8, Vec<O>) {
        let bytes = encode_elements(items, "e").unwrap();
        (bytes[0], decode_elements(&bytes, "e").unwrap())
    }

    #[test]
    fn elements_travel_as_bounds_bytes_or_through_serde() {
        let range: Vec<(u64,)> = (5..1005).map(|i| (i,)).collect();
        let (form, back) = elements::<_, (u64,)>(&range);
        assert_eq!((form, back), (AS_BOUNDS, range.clone()));
        assert_eq!(encode_elements(&range, "e").unwrap().len(), 1 + 16 + 8);
        let signed: Vec<(i8,)> = (-128..=127).map(|i| (i,)).collect();
        assert_eq!(elements::<_, (i8,)>(&signed), (AS_BOUNDS, signed));
        let gaps: Vec<(u32,)> = vec![(1,), (2,), (4,)];
        assert_eq!(elements::<_, (u32,)>(&gaps), (AS_BYTES, gaps));
        let floats: Vec<(f64,)> = vec![(0.0,), (1.0,), (f64::NAN,)];
        let (form, back) = elements::<_, (f64,)>(&floats);
        assert_eq!(form, AS_BYTES);
        assert!(back[2].0.is_nan() && back[1].0 == 1.0);
        let xs = [3u16, 4, 5];
        let borrowed: Vec<(&u16,)> = xs.iter().map(|x| (x,)).collect();
        assert_eq!(
            elements::<_, (u16,)>(&borrowed),
            (AS_BOUNDS, vec![(3,), (4,), (5,)])
        );
        let pairs = vec![(1u64, 2u64)];
        assert_eq!(elements::<_, (u64, u64)>(&pairs), (THROUGH_SERDE, pairs));
        let none: Vec<(u64,)> = Vec::new();
        assert_eq!(elements::<_, (u64,)>(&none), (AS_BYTES, none));
        let wide = vec![(u128::MAX,), (0,)];
        assert_eq!(elements::<_, (u128,)>(&wide), (AS_BYTES, wide));
    }

    #[test]
    fn elements_that_do_not_fit_their_type_are_refused() {
        let mut bounds = vec![AS_BOUNDS];
        bounds.extend_from_slice(&250i128.to_le_bytes());
        bounds.extend_from_slice(&10u64.to_le_bytes());
        assert!(
            decode_elements::<(u8,)>(&bounds, "e").is_err(),
            "past u8::MAX"
        );
        assert!(decode_elements::<(u16,)>(&bounds, "e").is_ok());
        assert!(
            decode_elements::<(u16,)>(&bounds[..20], "e").is_err(),
            "cut"
        );
        assert!(decode_elements::<(String,)>(&bounds, "e").is_err());
        assert!(decode_elements::<(u32,)>(&[AS_BYTES, 1, 2, 3], "e").is_err());
        assert!(decode_elements::<(u32,)>(&[9], "e").is_err());
        assert!(decode_elements::<(u32,)>(&[], "e").is_err());
    }
}
